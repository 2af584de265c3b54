"""Routes of the billing resources and the tenant portal under /api/v1/ (CONTRACT §5, §6)."""

urlpatterns: list = []
