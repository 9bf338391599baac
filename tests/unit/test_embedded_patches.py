"""The mongoeco fixes: pinned to the upstream code they replace, and still correct."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from fglab.embedded import patches


def test_the_fixes_match_the_installed_mongoeco():
    """Fails when mongoeco or a replaced method changes: review the fix, then re-pin."""
    assert patches.problems() == []


@pytest.mark.parametrize("document_id", [ObjectId(), "run-1"])
def test_exact_keyed_ids_skip_the_whole_collection_scan(document_id):
    seen = []
    check = patches._skip_payload_id_scan(lambda self, db, coll, doc, **kw: seen.append(kw))
    check(None, "db", "experiments", {"_id": document_id}, scan_payload_id=True)
    assert seen == [{"scan_payload_id": False}]


@pytest.mark.parametrize("document_id", [1, 1.0, Int64(1), {"a": 1}])
def test_other_ids_keep_the_scan(document_id):
    """Equal numbers have different storage keys: only the scan finds 1 == 1.0."""
    seen = []
    check = patches._skip_payload_id_scan(lambda self, db, coll, doc, **kw: seen.append(kw))
    check(None, "db", "experiments", {"_id": document_id}, scan_payload_id=True)
    assert seen == [{"scan_payload_id": True}]


def test_applied_fixes_still_resolve_to_the_pinned_sources():
    """Fix 2 wraps Fix 3's wrapper: the pin is checked against the method under both."""
    assert patches.apply() is True
    assert patches.apply() is True  # once only
    assert patches.problems() == []


def test_off_switch(monkeypatch):
    monkeypatch.setenv("FGLAB_EMBEDDED_PATCHES", "0")
    assert patches.apply() is False


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_engines_count_past_fifty_thousand_documents(kind, tmp_path):
    """mongoeco caps a $group (and so count_documents) at 50,000 documents by default."""
    from fglab.embedded.mongo import _engine

    engine = _engine(kind, str(tmp_path / "count.sqlite"))
    assert engine.aggregation_cost_policy is None
