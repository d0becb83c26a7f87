"""The gates' referential-integrity expectation for GX Core on pandas: `expect_column_values_to_be_keys_of`.

Every non-null value of `column` must be a key of `keys_table`.`keys_column` in the same partition (an order
line's order_id among the orders' order_id, ...). The expectation is on the column itself, so Data Docs, the
failure samples and the sample keys show that column and its dangling values. The keys are not part of the
expectation (a day's customers would fill the suite and every Data Docs page): the gate lends them for its
validations with `lending({(table, key): keys})`. Importing this module imports GX and registers the
expectation and its metric; crosschannel.core.gates imports it inside the gate, never at DAG parse time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial

TYPE = "expect_column_values_to_be_keys_of"
_LENT: dict[tuple[str, str], object] = {}


@contextlib.contextmanager
def lending(keys: dict[tuple[str, str], object]) -> Iterator[None]:
    """Make the keys of each (table, key column) available to the expectation while the block runs."""
    _LENT.update(keys)
    try:
        yield
    finally:
        for name in keys:
            _LENT.pop(name, None)


class ColumnValuesAreKeysOf(ColumnMapMetricProvider):
    condition_metric_name = "column_values.crosschannel_keys_of"
    condition_value_keys = ("keys_table", "keys_column")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, keys_table, keys_column, **kwargs):
        if (keys_table, keys_column) not in _LENT:
            raise LookupError(f"the gate lent no keys of {keys_table}.{keys_column}")
        return column.isin(_LENT[(keys_table, keys_column)])


class ExpectColumnValuesToBeKeysOf(ColumnMapExpectation):
    """Expect every non-null value of the column to be a key of another table in the same partition."""

    keys_table: str
    keys_column: str
    map_metric: ClassVar[str] = "column_values.crosschannel_keys_of"
    success_keys: ClassVar[tuple[str, ...]] = ("keys_table", "keys_column", "mostly")
