"""Forms of the review page: the decision, and the edit a reviewer makes before approving.

A proposal type may declare its own edit form (a subclass of ProposalEditForm: a refund's
amount in dollars and cents, a reply's text); the generic one edits the input as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.selectors import json_pretty

APPROVE, EDIT, REJECT = "approve", "edit", "reject"


class DecisionForm(forms.Form):
    """The review page's approve and reject forms, told apart by `action`."""

    action = forms.ChoiceField(choices=[(APPROVE, "Approve"), (EDIT, "Edit"), (REJECT, "Reject")])
    note = forms.CharField(required=False, max_length=2000)
    reason = forms.CharField(required=False, max_length=2000)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("action") == REJECT and not data.get("reason", "").strip():
            self.add_error("reason", "A rejection needs a reason; Claude is told it.")
        return data


class ProposalEditForm(forms.Form):
    """Base of an edit form: it knows the call and its record, and says what input would run."""

    template_name = "agents/proposals/_edit_json.html"
    label = "Edit, then approve"
    submit_label = "Approve with this input"

    def __init__(self, *args: Any, call: Any, record: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call, self.record = call, record

    def edited_value(self) -> dict[str, Any]:
        """The input that would run: by default the call's, with the form's fields over it."""
        return {**self.call.effective_input, **self.cleaned_data}


class JsonEditForm(ProposalEditForm):
    """Edit the call's input as JSON."""

    label = "Edit the input, then approve (JSON)"
    edited_input = forms.CharField(
        label="The input (JSON)", strip=False, widget=forms.Textarea(attrs={"rows": 10})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["edited_input"] = json_pretty(self.call.effective_input)

    def clean_edited_input(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["edited_input"])
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"This is not valid JSON: {error}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The input must be a JSON object ({…}).")
        return value

    def edited_value(self) -> dict[str, Any]:
        return self.cleaned_data["edited_input"]
