from django.urls import path

from demandes import views

urlpatterns = [
    path("", views.demandes, name="demandes"),
    path("demandes/<int:pk>/", views.demande, name="demande"),
    path("broadcast/", views.broadcast, name="broadcast"),
]
