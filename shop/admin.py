from django.contrib import admin

from shop.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price_cents", "stock", "is_active")
    list_filter = ("is_active",)
    search_fields = ("sku", "name")
