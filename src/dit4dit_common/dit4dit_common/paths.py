"""Where a package's data files (config/, launch/) are: installed share/, else its source tree."""

from pathlib import Path


def share_dir(package: str, module_file: str, *parts: str) -> Path:
    """
    Return ``share/<package>/<parts>`` of the installed package, else the source tree's.

    ``module_file`` is a module of that package (``__file__``): tests and tools also run from a
    checkout.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory(package)).joinpath(*parts)
        if share.is_dir():
            return share
    except (ImportError, LookupError, ValueError):
        pass
    return Path(module_file).resolve().parents[1].joinpath(*parts)
