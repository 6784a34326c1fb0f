"""Minimal Django settings for the Channels peer."""

import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels", "bench.peers.channels.apps.BenchChannelsConfig"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.peers.channels.urls"
ASGI_APPLICATION = "bench.peers.channels.asgi.application"
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_CHANNELS_DB", "/tmp/bench-channels.sqlite3"),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        },
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("BENCH_CHANNELS_REDIS", "redis://127.0.0.1:6379/7")],
            "capacity": 1000,
        },
    }
}
JWT_SECRET = os.environ.get("TIDINGS_JWT_SECRET", "secret")
API_KEYS = {k for k in os.environ.get("TIDINGS_API_KEYS", "key").split(",") if k}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
