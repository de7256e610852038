/**
 * Label selectors with Kubernetes' semantics, for Services (a plain map: every pair must match)
 * and NetworkPolicies (matchLabels and matchExpressions, all of which must hold):
 *   In: the key is present with one of the values; NotIn: the key is absent or has none of
 *   them; Exists: the key is present; DoesNotExist: it is absent.
 * An empty selector matches every set of labels. Callers decide what an absent selector means
 * (a Service without a selector selects no pods; a NetworkPolicy peer without podSelector means
 * every pod of the selected namespaces).
 */
import type { LabelSelector, LabelSelectorRequirement } from "./objects.ts";

type Labels = Record<string, string> | undefined;

function has(labels: Labels, key: string): boolean {
  return labels !== undefined && Object.prototype.hasOwnProperty.call(labels, key);
}

/** Does every key=value of `sel` appear in `labels`? ({} matches all.) */
export function matchesLabels(sel: Record<string, string>, labels: Labels): boolean {
  return Object.entries(sel).every(([k, v]) => has(labels, k) && labels![k] === v);
}

function matchesRequirement(r: LabelSelectorRequirement, labels: Labels): boolean {
  const present = has(labels, r.key);
  const values = r.values ?? [];
  switch (r.operator) {
    case "In":
      return present && values.includes(labels![r.key]);
    case "NotIn":
      return !present || !values.includes(labels![r.key]);
    case "Exists":
      return present;
    case "DoesNotExist":
      return !present;
  }
}

export function matchesSelector(selector: LabelSelector, labels: Labels): boolean {
  return matchesLabels(selector.matchLabels ?? {}, labels) && (selector.matchExpressions ?? []).every((r) => matchesRequirement(r, labels));
}

/** As kubectl prints a selector: "app=web,tier in (a,b),!legacy"; "<none>" when empty. */
export function formatSelector(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of selector.matchExpressions ?? []) {
    const values = `(${[...(r.values ?? [])].sort().join(",")})`;
    if (r.operator === "In") parts.push(`${r.key} in ${values}`);
    else if (r.operator === "NotIn") parts.push(`${r.key} notin ${values}`);
    else if (r.operator === "Exists") parts.push(r.key);
    else parts.push(`!${r.key}`);
  }
  return parts.length > 0 ? parts.join(",") : "<none>";
}
