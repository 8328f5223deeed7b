from django.urls import path

from support import views

app_name = "support"

urlpatterns = [
    path("inbound-email/", views.inbound_email, name="inbound-email"),
]
