import pytest

from tests.train._configs import write_text


@pytest.fixture
def text_file(tmp_path):
    return write_text(tmp_path)
