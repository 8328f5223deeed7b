from django.db import models


class Widget(models.Model):
    name = models.CharField(max_length=50, unique=True)
    stock = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class Shipment(models.Model):
    widget = models.ForeignKey(Widget, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    address = models.CharField(max_length=200)
    idempotency_key = models.UUIDField(unique=True)

    class Meta:
        permissions = [("approve_shipment", "Can approve shipping widgets")]
