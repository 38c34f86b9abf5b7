"""Entity rows sent to Feast's point-in-time join, and its answer spread back onto every row.

Feast's file (dask) offline store keeps one result row per (join keys, entity timestamp): its
`_drop_duplicates` runs `drop_duplicates(keys + [event_timestamp], keep="last")` after the join.
Entity rows sharing both (two orders in the same second, exact duplicates) came back once, and
all but one of them were left with empty features although a value existed. It dedups on the
join keys of the views joined *so far*, so rows sharing one view's key and time but not
another's (one customer, two products, one second) lose rows as well.

So the adapter never gives Feast two rows with the same (keys, moment): per set of join keys it
sends the unique (keys, moment) pairs only, each with a group number, and joins the answer back
onto every original row by that number. That is also less for Feast to join.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from stack.errors import StackError

GROUP = "__mlstack_group"

# (unique entity rows, feature refs) -> Feast's answer: those rows with the features added.
Retrieve = Callable[[pd.DataFrame, list[str]], pd.DataFrame]


def utc_moments(column: pd.Series, name: str) -> pd.Series:
    """The entity timestamps as tz-aware UTC datetimes, index 0..n-1.

    Naive values are read as UTC, as Feast reads them; aware ones are converted, so one moment
    written in two zones is one moment. Raises StackError naming the column when a value is
    not a timestamp."""
    try:
        moments = pd.to_datetime(column, utc=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StackError(f"entity frame column {name!r} must hold timestamps: {exc}") from exc
    return pd.Series(moments, name=name).reset_index(drop=True)


def point_in_time(
    frame: pd.DataFrame,
    moments: pd.Series,
    timestamp: str,
    key_sets: Sequence[tuple[tuple[str, ...], list[str]]],
    retrieve: Retrieve,
) -> pd.DataFrame:
    """`frame` (n rows, index reset to 0..n-1) with each feature's value as of its row's moment.

    `moments`: the rows' timestamps from `utc_moments`. `key_sets`: (join keys, feature refs
    "view:feature") per set of views sharing the same join keys; `retrieve` is called once per
    set with one row per distinct (keys, moment). A row with no value as of its moment gets
    empty (NaN/None) features. Columns: the frame's, untouched, then the features in the order
    asked."""
    training = frame.reset_index(drop=True)
    for keys, refs in key_sets:
        probe = training[list(keys)].copy()
        probe[timestamp] = moments
        groups = probe.groupby([*keys, timestamp], sort=False, dropna=False).ngroup().to_numpy()
        # ngroup numbers groups in order of appearance: their first rows come out in order.
        _, first = np.unique(groups, return_index=True)
        unique = probe.iloc[first].assign(**{GROUP: groups[first]})
        answer = retrieve(unique.reset_index(drop=True), refs)
        # Feast drops a row that has no value as of its time: reindex puts it back, empty.
        found = answer.set_index(GROUP).reindex(groups)
        for ref in refs:
            name = ref.partition(":")[2]
            training[name] = found[name].to_numpy()
    return training
