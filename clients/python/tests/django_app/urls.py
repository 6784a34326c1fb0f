from django.template import engines
from django.urls import include, path
from tidings_client.django.views import async_token_view


def bell_page(request):
    from django.http import HttpResponse

    page = engines["django"].from_string("{% load tidings %}{% tidings_bell limit=5 %}")
    return HttpResponse(page.render({}, request))


urlpatterns = [
    path("tidings/", include("tidings_client.django.urls")),
    path("async-token/", async_token_view),
    path("bell/", bell_page),
]
