from django.urls import path

from webhooks import views

# One address per partner that signs with its own secret (settings.WEBHOOK_PARTNERS).
urlpatterns = [
    path("webhooks/payment", views.webhook, {"partner": "payment"}, name="webhook-payment"),
    path("webhooks/carrier", views.webhook, {"partner": "carrier"}, name="webhook-carrier"),
]
