from collections.abc import Iterator

import pytest
from example_site import running_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tidings server and the example project, as ``./run`` starts them."""
    with running_site(tmp_path_factory.mktemp("example")) as url:
        yield url
