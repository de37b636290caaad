import pytest

from tests.chaos.rig import Rig


@pytest.fixture
def rig(transactional_db, sandbox, sandbox_url, tmp_path):
    rig = Rig(tmp_path=tmp_path, sandbox_url=sandbox_url)
    yield rig
    rig.stop()
