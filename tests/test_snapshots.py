"""A reviewed snapshot of each environment's synthesized Terraform.

Any change to the stacks shows up here as a diff: review it, then accept it with
`scripts/test tests/test_snapshots.py --snapshot-update` and commit the snapshot files.
"""

import pytest
from conftest import PROJECT_ENVIRONMENTS
from syrupy.extensions.json import JSONSnapshotExtension


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("environment", PROJECT_ENVIRONMENTS)
def test_synthesized_stack_matches_the_snapshot(synth, snapshot_json, environment):
    assert synth.stack(environment) == snapshot_json
