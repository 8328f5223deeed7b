from django.urls import path

from sre import views

app_name = "sre"

urlpatterns = [
    path("", views.github_webhook, name="github-webhook"),
]
