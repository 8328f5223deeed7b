from django.urls import path

from support import views

app_name = "support"

urlpatterns = [
    path("inbound-email/", views.inbound_email, name="inbound-email"),
    path("stripe/", views.stripe_webhook, name="stripe-webhook"),
]
