from django.urls import path

from shop import api, views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("cart/", views.cart, name="cart"),
    path("cart/update/", views.cart_update, name="cart-update"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<str:token>/", views.order, name="order"),
    path("orders/<str:token>/invoice.pdf", views.invoice, name="order-invoice"),
    path("files/imports/<int:job_id>", views.catalog_job_file, name="catalog-job-file"),
    path("api/v1/checkout", api.checkout, name="api-checkout"),
    path("api/v1/orders/<str:token>", api.order_detail, name="api-order"),
    path("api/v1/orders/<str:token>/cancel", api.order_cancel_view, name="api-order-cancel"),
    path("api/v1/products", api.products, name="api-products"),
]
