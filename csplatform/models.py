"""The platform app has no tables. The module exists so Django sends it ``post_migrate``, which
(re)applies row-level security to every tenant-owned table (``csplatform.rls``)."""
