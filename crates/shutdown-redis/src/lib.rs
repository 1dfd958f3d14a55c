//! Redis support for shutdown pipelines: flush, restore, shutdown receipt, fleet kill switch.
