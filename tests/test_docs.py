"""The docs that are generated or machine-checked: the configuration reference and the
OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import yaml

from sdctl.config import reference
from sdctl.config.loader import example_text

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_config_reference_matches_the_model_and_the_example():
    page, missing = reference.render(example_text())
    assert missing == [], f"keys with no comment in sdctl.example.yaml: {missing}"
    assert (DOCS / "config-reference.md").read_text() == page, \
        "docs/config-reference.md is stale: python -m sdctl.config.reference > docs/config-reference.md"


def test_the_iam_table_in_the_security_page_is_what_the_templates_grant():
    """docs/security.md's per-component IAM table is generated from builders/cfn/policies.py,
    the documents the templates grant; a statement added there without regenerating fails here."""
    from sdctl.builders import iam_table

    page = (DOCS / "security.md").read_text()
    start, end = page.index(iam_table.BEGIN), page.index(iam_table.END) + len(iam_table.END)
    assert page[start:end] + "\n" == iam_table.table(), \
        "docs/security.md is stale: replace its iam-table block with `python -m sdctl.builders.iam_table`"
    for role in ("webhook deliverer", "dynamodb:BatchGetItem", "apigateway:GET", "secretsmanager:GetSecretValue"):
        assert role in page[start:end]


def test_every_config_key_is_in_the_reference():
    from sdctl.config.model import Config

    page = (DOCS / "config-reference.md").read_text()
    keys = [k for k, _, _ in reference.rows(Config)]
    assert len(keys) > 50 and all(f"| `{k}` |" in page for k in keys)


def test_the_openapi_document_is_valid_openapi_3():
    from openapi_spec_validator import validate

    spec = yaml.safe_load((DOCS / "openapi.yaml").read_text())
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/v1alpha2", "/v1alpha2/tasks/{id}"}
    assert set(spec["paths"]["/v1alpha2/tasks/{id}"]) >= {"get", "delete"}
