"""Admin pages: endpoints validated by the database itself, the delivery log read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from .models import DeliveryLog, Endpoint
from .validation import database_errors


class _NeverShown(forms.Textarea):
    """A text area that never renders a value: stored or submitted secrets stay out of the page."""

    def format_value(self, value: Any) -> None:
        return None


class EndpointForm(forms.ModelForm):
    """An endpoint form whose last check is the database's: the write is tried in a savepoint, and a refusal becomes the error of the column it names."""

    secrets = forms.CharField(
        required=False,
        widget=_NeverShown(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="One secret per line (whsec_…, e.g. from `tailhook secret`). Never shown; leave empty to keep the current ones.",
    )

    legacy_secret = forms.CharField(
        required=False,
        widget=_NeverShown(attrs={"rows": 1, "autocomplete": "off"}),
        help_text="The key of the legacy signature header (16 to 256 bytes). Never shown; leave empty to keep the current one.",
    )

    tls_client_key = forms.CharField(
        required=False,
        widget=_NeverShown(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="The private key (PEM) of the client certificate. Never shown; leave empty to keep the current one.",
    )

    class Meta:
        model = Endpoint
        fields = [
            "name",
            "url",
            "tenant",
            "event_types",
            "secrets",
            "headers",
            "enabled",
            "paused_until",
            "ordered",
            "max_attempts",
            "timeout_ms",
            "rate_limit_per_sec",
            "max_in_flight",
            "backoff_initial_ms",
            "backoff_max_ms",
            "filter",
            "filter_path",
            "transform",
            "standard_signature",
            "propagate_trace",
            "legacy_signature",
            "legacy_secret",
            "tls_client_cert",
            "tls_client_key",
            "tls_ca_bundle",
        ]

    def clean_secrets(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data.get("secrets", "").splitlines() if line.strip()]
        if not lines and self.instance.pk is not None:
            return list(self.instance.secrets or [])
        return lines

    def clean_legacy_secret(self) -> Any:
        value = self.cleaned_data.get("legacy_secret", "")
        if not value and self.instance.pk is not None:
            return self.instance.legacy_secret
        return value or None

    def clean_tls_client_key(self) -> Any:
        value = self.cleaned_data.get("tls_client_key", "")
        if not value and self.instance.pk is not None:
            return self.instance.tls_client_key
        return value or None

    def clean_headers(self) -> Any:
        headers = self.cleaned_data.get("headers")
        return {} if headers is None else headers

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or self.cleaned_data
        # An empty text box means no value (NULL), as for the other nullable columns.
        for f in Endpoint._meta.concrete_fields:
            if f.null and cleaned.get(f.name) == "":
                cleaned[f.name] = None
        return cleaned

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        for column, messages in database_errors(self.instance).items():
            for message in messages:
                self.add_error(column if column in self.fields else None, message)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["name", "url", "tenant", "enabled", "auto_disabled", "consecutive_failures", "invalid_reason"]
    list_filter = ["enabled", "auto_disabled"]
    search_fields = ["name", "url", "tenant"]
    # Shown once the row exists (before, they hold the database's defaults, not values).
    state_fields = [
        "managed_by",
        "disabled_reason",
        "consecutive_failures",
        "failing_since",
        "invalid_reason",
        "auto_disabled",
        "created_at",
        "updated_at",
    ]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.state_fields)


@admin.register(DeliveryLog)
class DeliveryLogAdmin(admin.ModelAdmin):
    list_display = ["delivery_id", "event_type", "endpoint", "status", "attempts", "published_at", "last_status_code", "last_error"]
    list_filter = ["status", "endpoint"]
    search_fields = ["=event_id", "event_type", "endpoint", "tenant"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
