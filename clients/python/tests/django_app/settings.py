"""Django settings of the SDK's tests: the pytest suite and Django's own test runner.

``TIDINGS_URL`` names the tidings server under test (the pytest fixtures set
``TIDINGS["URL"]`` to the server they start; the runner's subprocess gets it from the
environment).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests"))

from realtime_helpers import API_KEY, SECRET  # noqa: E402

DEBUG = True
SECRET_KEY = "tidings-client-tests"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tidings_client.django",
    "django_app",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "django_app.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TIDINGS = {
    "URL": os.environ.get("TIDINGS_URL", "http://127.0.0.1:9"),
    "API_KEY": API_KEY,
    "JWT_SECRET": SECRET,
}
