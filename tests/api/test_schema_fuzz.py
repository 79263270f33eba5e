"""Schemathesis over the app's own OpenAPI schema, in-process: requests generated from the
schema (valid ones and deliberately invalid ones), sent with each role's key, must never get
a 5xx. Bounded: `EXAMPLES` per operation, role and mode, no shrinking (a failure is reported
with the request that caused it, as a curl command)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans

from matcher.api import create_app
from matcher.api.schemas import CaseCreate
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    add_photo,
    create_case,
    ingest_sighting,
    new_key,
)
from matcher.store import NewCase, NewSighting, Role
from tests.api.builders import case_body
from tests.api.conftest import auth
from tests.data import lfw_photos, require_test_data

EXAMPLES = 10
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def seed(matcher: Runtime) -> None:
    """A case with a face and a matching sighting, so generated ids 1, 2... reach rows."""
    photos = lfw_photos()
    case = create_case(matcher, NewCase(**CaseCreate(**case_body("Fuzz")).model_dump()))
    add_photo(matcher, case.id, CasePhotoUpload(photos[0].path.read_bytes(), None, 8.0))
    ingest_sighting(matcher, photos[1].path.read_bytes(), NewSighting(app="fuzz"))


def fuzz(operation: Any, mode: GenerationMode, key: dict[str, str]) -> int:
    """Up to EXAMPLES generated requests to one operation with one key; how many were sent."""
    sent = 0

    @SETTINGS
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=key)
        case.validate_response(response, checks=[not_a_server_error])

    run()
    return sent


def test_no_generated_request_gets_a_server_error(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    app = create_app(settings.model_copy(update={"data_dir": tmp_path / "data"}), pipeline)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    try:
        matcher = app.state.matcher
        keys = {role: new_key(matcher.sessions, role, f"fuzz {role.value}")[1] for role in Role}
        seed(matcher)
        failures: list[str] = []
        start, sent = time.monotonic(), 0
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                pytest.fail(f"schemathesis cannot read an operation: {result.err()}")
            operation = result.ok()
            for role in Role:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        sent += fuzz(operation, mode, auth(keys[role]))
                    except hypothesis.errors.Unsatisfiable:
                        pass  # nothing to make invalid (GET /healthz has no parameters)
                    except Exception as error:  # every failure is reported, not just the first
                        failures.append(f"{operation.label} as {role.value} ({mode.value}): "
                                        f"{error}"[:3000])
        print(f"\nschemathesis: {sent} requests in {time.monotonic() - start:.0f} s")
        assert not failures, "\n\n".join(failures)
    finally:
        shutdown_lifespans()

