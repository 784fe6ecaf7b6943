"""The genas test suite (a package, so that ``tests.conftest`` is ours even where a dependency ships a ``tests`` package, as mmsegmentation does)."""
