"""Chapter 4, clustering: the threshold scan of the old and the new cluster rule, the clusters
found, the strong-match sets, and the verdict on C10 (errors land inside the true token's cluster).

C10's rule, written down before the book was re-executed with it (`analysis.scan`): at the last
block, the wrong predictions of clustered tokens that stay in their own cluster, over all wrong
predictions of clustered tokens, both summed over the scan 0.2-0.8 (the book's filter and
`match`), above the 95th percentile of the same statistic of the within-row shuffled copies, each
clustered anew. It is measured wherever any scanned threshold has a cluster. The first books'
reading at the single `threshold` against labels permuted at fixed sizes (`c10_verdict`) is shown
beside it and no longer decides.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.clusters import ClusterRule, first_book_rule, threshold_scan
from ..analysis.power import Planting, power_phrase
from ..analysis.scan import Scan, ScanRule, null_quantile
from ..analysis.structure import counted, partition, peak_phrase, trend_phrase
from ..core import exports
from ..core.verdicts import Verdict, decide

SCAN_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
OWN = "in own cluster"


def rule_name(rule: ClusterRule) -> str:
    """A rule's short name in the scan, e.g. "strict, rows >= 5, mutual"."""
    if rule.ties_pass:
        return f"ties pass, rows >= {rule.min_row_count}, {rule.match}"
    return f"strict, rows >= {rule.min_row_count}, {rule.match}"


def scan_rules(rule: ClusterRule) -> dict[str, ClusterRule]:
    """The rules the scan compares: the lenient one (ties pass), the strict filter with one-way
    matches, and the strict filter with mutual matches (each at `rule`'s threshold and minimum row
    count)."""
    strict = [ClusterRule(rule.threshold, match, rule.min_row_count) for match in ("one-way", "mutual")]
    return {"lenient: ties pass, one-way": first_book_rule(rule.threshold)} | {
        rule_name(r): r for r in strict}


def threshold_scans(confusion, rule: ClusterRule) -> dict[str, pd.DataFrame]:
    """`clusters.threshold_scan` of one confusion [V, V] under every rule of `scan_rules`, at
    SCAN_THRESHOLDS and the rule's own threshold."""
    thresholds = sorted({*SCAN_THRESHOLDS, rule.threshold})
    return {name: threshold_scan(confusion, thresholds, r) for name, r in scan_rules(rule).items()}


def scan_sentence(scans: dict[str, pd.DataFrame], rule: ClusterRule) -> str:
    """One Markdown paragraph: what each rule gives at the chosen threshold, and how far the largest
    cluster moves over the scan."""
    parts = []
    for name, scan in scans.items():
        row = scan.set_index("threshold").loc[rule.threshold]
        share = f" ({row['largest_share']:.0%})" if row["kept_tokens"] else ""
        parts.append(f"*{name}*: {counted(int(row['kept_tokens']), 'kept token')}, "
                     f"{counted(int(row['clusters']), 'cluster')}, the largest of "
                     f"{counted(int(row['largest']), 'token')}{share}; over the scan the largest "
                     f"holds {scan['largest'].min():,}-{scan['largest'].max():,}")
    return (f"At threshold {rule.threshold:g}: " + "; ".join(parts) + f". The book uses "
            f"**{rule.describe()}**.")


def c10_verdict(shares: pd.DataFrame) -> Verdict:
    """C10 on the last row of a `structure.error_share_by_block` table."""
    last, block = shares.iloc[-1], shares.index[-1]
    observed, null_mean, null_top = last[[OWN, "permuted labels (mean)", "permuted labels (95%)"]]
    measured = shares[OWN].dropna()
    this_run = (f"block {block}: {observed:.1%} of clustered tokens' errors in their own cluster; "
                f"permuted labels {null_mean:.1%} (95th percentile {null_top:.1%})"
                + (f"; block {measured.index[0]}: {measured.iloc[0]:.1%}" if len(measured) > 1 else ""))
    statistic = ("last block: share of wrong predictions (true token in a cluster of size >= 2) "
                 "that land in the true token's own cluster, above the 95th percentile of the same "
                 "with cluster labels permuted at fixed cluster sizes")
    if not np.isfinite([observed, null_top]).all():
        why = ("has no strong-match cluster" if last["clustered"] == 0
               else "has clusters whose tokens are never wrong")
        return Verdict("C10", f"block {block}: no error of a clustered token", statistic,
                       decide(None), f"block {block} {why}: no error to place")
    majority = "a majority" if observed > 0.5 else "a minority"
    above = observed > null_top
    reason = (f"{observed:.1%} of the clustered tokens' errors ({majority}) stay in their cluster "
              f"against {null_mean:.1%} with permuted labels: {'above' if above else 'not above'} "
              f"the null's 95th percentile {null_top:.1%}")
    return Verdict("C10", this_run, statistic, decide(bool(above)), reason)


def c10_scan_verdict(last: Scan, block: int, power: pd.DataFrame | None,
                     planting: Planting | None, single: Verdict, positions: str) -> Verdict:
    """C10 on the last block's scan of the W_test `positions` it reads (e.g. "masked"), with its
    power and the single-threshold verdict beside it."""
    share, null = last.own_share(), last.null_values("own_share")
    table = last.primary(last.observed)
    with_clusters = table.index[table["clusters"] > 0]
    this_run = (f"block {block}, {positions} positions, {last.match}, thresholds "
                f"{table.index[0]:g}-{table.index[-1]:g}: "
                f"{share:.1%} of clustered tokens' errors in their own cluster; shuffled null "
                f"{null.mean():.1%} (95th percentile {null_quantile(null):.1%}); at threshold "
                f"alone: {single.verdict}")
    statistic = ("last block, pooled over the scan: wrong predictions of tokens in clusters of "
                 "size >= 2 that land in the true token's own cluster, over all their wrong "
                 "predictions, above the 95th percentile of the same in within-row shuffled "
                 "copies clustered anew")
    if not np.isfinite(share):
        why = ("has no strong-match cluster at any scanned threshold" if not len(with_clusters)
               else "has clusters whose tokens are never wrong")
        return Verdict("C10", f"block {block}: no error of a clustered token", statistic,
                       decide(None), f"block {block} {why}: no error to place")
    above = share > null_quantile(null)
    majority = "a majority" if share > 0.5 else "a minority"
    reason = (f"{share:.1%} of the clustered tokens' errors ({majority}) stay in their cluster "
              f"against {null.mean():.1%} in the shuffled copies: {'above' if above else 'not above'} "
              f"the null's 95th percentile {null_quantile(null):.1%} (clusters at thresholds "
              f"{', '.join(f'{t:g}' for t in with_clusters)}); "
              f"{power_phrase(None if power is None else power['C10'], planting)}")
    return Verdict("C10", this_run, statistic, decide(bool(above)), reason)


def export_clusters(partitions: list, tokenizer) -> pd.DataFrame:
    """Every block's clusters of two or more tokens (block, cluster, size, token_id, token), saved
    into the chapter's exports as clusters_by_block.csv."""
    rows = []
    for block, part in enumerate(partitions):
        sizes = np.bincount(part.labels) if len(part.labels) else np.zeros(0, int)
        for token, label in zip(part.kept.tolist(), part.labels.tolist()):
            if sizes[label] >= 2:
                rows.append((block, label, int(sizes[label]), token))
    table = pd.DataFrame(rows, columns=["block", "cluster", "size", "token_id"])
    table["token"] = tokenizer.convert_ids_to_tokens(table["token_id"].tolist())
    table = table.sort_values(["block", "size", "cluster", "token_id"], ascending=[True, False, True, True])
    exports.save_table(table.reset_index(drop=True), "clusters_by_block")
    return table


def own_share_table(scans: list[Scan]) -> pd.DataFrame:
    """Per block: clustered tokens (scan sum), C10's own-cluster share pooled over the scan, and
    its shuffled null's mean and 95th percentile (0 where a copy has no clustered error)."""
    rows = [{"clustered (scan sum)": result.clustered(), OWN: result.own_share(),
             "null (mean)": float(result.null_values("own_share").mean()),
             "null (95%)": null_quantile(result.null_values("own_share"))} for result in scans]
    return pd.DataFrame(rows, index=pd.RangeIndex(len(scans), name="block"))


def own_share_curves(table: pd.DataFrame) -> dict[str, pd.Series]:
    """The own-cluster share and its null's 95th percentile against block."""
    return {"own clusters": table[OWN], "shuffled null, 95th percentile": table["null (95%)"]}


def own_share_title(table: pd.DataFrame) -> str:
    """The figure's title, saying the direction the run computed."""
    return (f"Share of clustered tokens' errors inside their own cluster (pooled over the scan): "
            f"it {trend_phrase(table[OWN], 'block')}{peak_phrase(table[OWN], 'block')}")


def cluster_lists(confusion, rule: ScanRule, tokenizer, frequency: np.ndarray) -> pd.DataFrame:
    """Every cluster of the loosest scanned threshold of counts [V, V] (the rule's match and
    filter), with its tokens (most frequent first) and the strictest scanned threshold at which
    they still share one cluster. Empty when no threshold has a cluster."""
    thresholds = sorted(rule.thresholds)
    parts = {t: partition(confusion, rule.at(t)) for t in thresholds}
    loosest = next((t for t in thresholds if (parts[t].sizes >= 2).any()), None)
    if loosest is None:
        return pd.DataFrame(columns=["size", "together up to threshold", "tokens"])
    rows = []
    for members in _clusters(parts[loosest]):
        together = [t for t in thresholds if t >= loosest and _together(parts[t], members)]
        members = members[np.argsort(-frequency[members], kind="stable")]
        rows.append({"size": len(members), "together up to threshold": max(together),
                     "tokens": " · ".join(tokenizer.convert_ids_to_tokens(members.tolist()))})
    table = pd.DataFrame(rows).sort_values(["together up to threshold", "size"], ascending=False)
    return table.reset_index(drop=True).rename_axis(f"cluster at {loosest:g}")


def _clusters(part) -> list[np.ndarray]:
    sizes = np.bincount(part.labels)
    return [part.kept[part.labels == label] for label in np.flatnonzero(sizes >= 2)]


def _together(part, members: np.ndarray) -> bool:
    return len(set(part.full_labels[members].tolist())) == 1 and np.isin(members, part.kept).all()


def set_size_sentence(sizes: pd.DataFrame, threshold: float) -> str:
    """One Markdown sentence on the strong-match sets at one threshold, observed against the null."""
    observed, null = sizes.loc[threshold, "observed"], sizes.loc[threshold, "shuffled null (mean)"]
    return (f"At threshold {threshold:g}, {int(observed.sum()):,} kept tokens have a strong-match "
            f"set of at least one other token ({int(observed.iloc[0]):,} of one, "
            f"{int(observed.iloc[1]):,} of two, {int(observed.iloc[2]):,} of three or more), "
            f"against {null.sum():,.1f} in the shuffled copies.")
