import pytest

from harness.rig import Rig
from tests.workers import session_database_url


@pytest.fixture
def rig(transactional_db, sandbox, sandbox_url, tmp_path):
    rig = Rig(tmp_path=tmp_path, database_url=session_database_url(), sandbox_url=sandbox_url)
    yield rig
    rig.stop()
