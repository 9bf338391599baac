"""`fglab up` warns when the embedded MongoDB holds more experiments than it serves well."""

from __future__ import annotations

import logging

from bson import ObjectId

from fglab import up


def test_a_big_embedded_store_is_warned_about(settings, db, monkeypatch, caplog) -> None:
    monkeypatch.setattr(up, "EMBEDDED_COMFORT", 3)
    project = ObjectId()
    db["experiments"].insert_many([{"_project_id": project} for _ in range(2)])
    with caplog.at_level(logging.WARNING, logger="fglab.up"):
        assert up.warn_if_embedded_is_outgrown(settings) == 2
    assert caplog.records == []

    db["experiments"].insert_one({"_project_id": project})
    with caplog.at_level(logging.WARNING, logger="fglab.up"):
        assert up.warn_if_embedded_is_outgrown(settings) == 3
    [record] = caplog.records
    assert "the embedded server holds 3 experiments; past 3" in record.getMessage()
    assert "set MONGODB_URI" in record.getMessage()
