from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ServerProcess, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VOICE_GRACE_SECONDS": "4", "VOICE_TOKEN_WARNING_SECONDS": "10"}
    with running_server(tmp_path_factory.mktemp("srv"), env=env) as srv:
        yield srv


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path
