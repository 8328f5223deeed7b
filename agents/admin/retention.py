"""The audit log's retention page: see what is past retention, export it, then prune it."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from agents.models import AuditEvent
from agents.services.retention import PERMISSION, RetentionRefused, audit_prune


class RetentionForm(forms.Form):
    older_than_days = forms.IntegerField(
        label="Older than (days)", min_value=1, max_value=36_500, help_text="At least the minimum."
    )
    confirm = forms.BooleanField(
        label="I have read the counts: export these rows, then delete them from the database.",
        required=False,
    )


class RetentionMixin:
    """/admin/agents/auditevent/retention/ and the download of each export file."""

    def get_urls(self):
        return [
            path(
                "retention/",
                self.admin_site.admin_view(self.retention_view),
                name="agents_auditevent_retention",
            ),
            path(
                "retention/<str:name>",
                self.admin_site.admin_view(self.retention_file_view),
                name="agents_auditevent_retention_file",
            ),
        ] + super().get_urls()

    def retention_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        minimum = settings.AGENTS_AUDIT_RETENTION_DAYS
        form = RetentionForm(request.POST or None, initial={"older_than_days": minimum})
        preview = None
        if request.method == "POST" and form.is_valid():
            days = form.cleaned_data["older_than_days"]
            try:
                if form.cleaned_data["confirm"]:
                    result = audit_prune(user=request.user, older_than_days=days)
                    messages.success(
                        request,
                        f"Exported and pruned {result.counts['agents_auditevent']} audit events "
                        f"and {result.counts['agents_modelcall']} model calls to "
                        f"{result.path.name} (SHA-256 {result.sha256[:16]}…).",
                    )
                    return HttpResponseRedirect(reverse("admin:agents_auditevent_retention"))
                preview = audit_prune(user=request.user, older_than_days=days, dry_run=True)
            except RetentionRefused as error:
                form.add_error("older_than_days", str(error))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Audit log retention",
            "form": form,
            "preview": preview,
            "minimum": minimum,
            "prunes": AuditEvent.objects.filter(kind="audit.pruned").select_related("actor")[:20],
            "files": _export_files(),
        }
        return TemplateResponse(request, "agents/retention.html", context)

    def retention_file_view(self, request: HttpRequest, name: str) -> FileResponse:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        match = next((f for f in _export_files() if f.name == name), None)
        if match is None:
            raise Http404("No such export.")
        return FileResponse(match.open("rb"), as_attachment=True, filename=match.name)


def _export_files() -> list[Path]:
    directory = Path(settings.AGENTS_AUDIT_EXPORT_DIR)
    if not directory.is_dir():
        return []
    return sorted(directory.glob("audit-before-*.jsonl.gz"), reverse=True)
