from django.urls import path

from tidings_client.django.views import token_view

urlpatterns = [path("token/", token_view, name="tidings-token")]
