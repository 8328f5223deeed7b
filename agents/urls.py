from django.urls import path

from agents import views

app_name = "agents"

urlpatterns = [
    path("interactions/", views.slack_interactions, name="slack-interactions"),
]
