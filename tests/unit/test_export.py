"""Training-data export: chat-format lines, the grounding filter, version selection, inputs left untouched."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from extractor.evaluation.export import export_examples, to_training_example, write_export

SYSTEM = {"role": "system", "content": "Extract the key terms of an NDA ..."}


def entry(
    data: dict[str, Any] | None, *, grounded: bool = True, schema: str = "nda@1", text: str = "doc"
) -> dict[str, Any]:
    user = {"role": "user", "content": f"Document:\n<<<\n{text}\n>>>"}
    return {"schema": schema, "text": text, "messages": [SYSTEM, user], "data": data, "all_grounded": grounded}


class FakeLog:
    """Stands in for ResultsLog.read: the entries of one tenant and schema name, oldest first."""

    def __init__(self, entries: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.entries = entries

    async def read(self, tenant: str, schema_name: str) -> AsyncIterator[dict[str, Any]]:
        for item in self.entries.get((tenant, schema_name), []):
            yield item


def test_training_example_is_the_prompt_plus_the_data_as_assistant_json() -> None:
    logged = entry({"party": ["Nike Inc."], "term": None, "jurisdiction": "Oregon"}, text="Nike, Oregon")
    before = copy.deepcopy(logged)

    example = to_training_example(logged)

    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert example["messages"][:2] == logged["messages"]
    assert json.loads(example["messages"][2]["content"]) == logged["data"]
    assert example["messages"][2]["content"] == '{"party":["Nike Inc."],"term":null,"jurisdiction":"Oregon"}'
    assert logged == before  # the logged entry is not touched
    assert example["messages"][0] is not logged["messages"][0]


def test_non_ascii_is_kept_verbatim() -> None:
    example = to_training_example(entry({"party": ["99¢ Only Stores"]}))
    assert "99¢ Only Stores" in example["messages"][2]["content"]


async def test_only_grounded_results_unless_all_is_asked() -> None:
    log = FakeLog(
        {
            ("default", "nda"): [
                entry({"term": "2 years"}, text="one"),
                entry({"term": "forever"}, grounded=False, text="two"),
                entry({"term": "5 years"}, text="three"),
            ]
        }
    )

    grounded = [e async for e in export_examples(log, "default", "nda")]  # type: ignore[arg-type]
    everything = [e async for e in export_examples(log, "default", "nda", include_ungrounded=True)]  # type: ignore[arg-type]

    assert [json.loads(e["messages"][2]["content"])["term"] for e in grounded] == ["2 years", "5 years"]
    assert [json.loads(e["messages"][2]["content"])["term"] for e in everything] == ["2 years", "forever", "5 years"]


async def test_a_version_ref_selects_that_version_and_tenants_stay_apart() -> None:
    log = FakeLog(
        {
            ("default", "nda"): [entry({"term": "a"}, schema="nda@1"), entry({"term": "b"}, schema="nda@2")],
            ("acme", "nda"): [entry({"term": "c"}, schema="nda@2")],
        }
    )

    v2 = [e async for e in export_examples(log, "default", "nda@2")]  # type: ignore[arg-type]
    acme = [e async for e in export_examples(log, "acme", "nda")]  # type: ignore[arg-type]

    assert [json.loads(e["messages"][2]["content"]) for e in v2] == [{"term": "b"}]
    assert [json.loads(e["messages"][2]["content"]) for e in acme] == [{"term": "c"}]


async def test_write_export_writes_one_json_object_per_line_and_counts_them() -> None:
    log = FakeLog({("default", "nda"): [entry({"term": "a"}), entry(None), entry({"term": "b"}, grounded=False)]})
    out = io.StringIO()

    count = await write_export(log, "default", "nda", out)  # type: ignore[arg-type]

    lines = out.getvalue().splitlines()
    assert count == 1
    assert len(lines) == 1
    assert json.loads(lines[0])["messages"][2]["content"] == '{"term":"a"}'
