from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from agents import health, metrics

admin.site.site_header = "Countersign"
admin.site.site_title = "Countersign"
admin.site.index_title = "Operations console"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("hooks/", include("support.urls")),
    path("hooks/github/", include("sre.urls")),
    path("hooks/slack/", include("agents.urls")),
    # For load balancers, process managers and Prometheus (docs/DEPLOY.md).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
