"""flake8 in the ROS style (ament_flake8's configuration: 99 columns, google import order, ...)."""

from dit4dit_common.testing import flake8_errors
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = flake8_errors()
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
