"""``{% load tidings %}{% tidings_bell %}``: the ``<tidings-bell>`` of the signed-in user.

The scripts come from the tidings server's ``/static/``. When the token view is routed
(URL name ``tidings-token``) the bell fetches fresh tokens from it as they expire;
otherwise a token for ``request.user`` is rendered into the page. Renders nothing for
anonymous users.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from tidings_client.django.conf import get_client, tidings_settings, token_ttl

register = template.Library()
_ids = itertools.count(1)


@register.simple_tag(takes_context=True)  # type: ignore[untyped-decorator]
def tidings_bell(context: template.Context, **attributes: Any) -> SafeString:
    """Extra keyword arguments become attributes of the bell (``limit=10``, ``toasts="off"``)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return mark_safe("")
    url = tidings_settings()["URL"].rstrip("/")
    element = f"tidings-bell-{next(_ids)}"
    extra = "".join(format_html(' {}="{}"', k.replace("_", "-"), v) for k, v in attributes.items())
    try:
        token_url = reverse("tidings-token")
    except NoReverseMatch:
        token_url = None
    if token_url is None:
        roles = list(user.groups.values_list("name", flat=True))
        token = get_client().token(user.get_username(), roles=roles, ttl=token_ttl())
        return format_html(
            '<script type="module" src="{}/static/tidings-bell.js"></script>'
            '<tidings-bell id="{}" url="{}" token="{}"{}></tidings-bell>',
            url, element, url, token, mark_safe(extra),
        )  # fmt: skip
    script = (
        f"import {{ Tidings }} from {json.dumps(url + '/static/tidings.js')};\n"
        f"import {json.dumps(url + '/static/tidings-bell.js')};\n"
        f"const bell = document.getElementById({json.dumps(element)});\n"
        f"bell.client = new Tidings({{ url: {json.dumps(url)}, getToken: async () => {{\n"
        f"  const r = await fetch({json.dumps(token_url)}, {{ credentials: 'same-origin' }});\n"
        "  return (await r.json()).token;\n}});\n"
    )
    return format_html(
        '<tidings-bell id="{}"{}></tidings-bell><script type="module">{}</script>',
        element, mark_safe(extra), mark_safe(script.replace("</", "<\\/")),
    )  # fmt: skip
