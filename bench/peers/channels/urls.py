"""URL routes of the Channels peer."""

from django.urls import path

from bench.peers.channels import views

urlpatterns = [
    path("readyz", views.readyz),
    path("api/v1/notifications", views.create_notification),
]
