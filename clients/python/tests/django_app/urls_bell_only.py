from django.urls import path

from django_app.urls import bell_page

urlpatterns = [path("bell/", bell_page)]
