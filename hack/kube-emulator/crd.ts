// CustomResourceDefinitions: the resource types a CRD serves, its defaults and validation, and the
// status the apiextensions controllers report.
import { bucketOf, type PrinterColumn, type ResourceType } from './registry.js';
import { checkRulesCompile } from './schema.js';
import { fe, type FieldError } from './status.js';
import { jsonPath } from './table.js';

type Obj = Record<string, any>;

/** One ResourceType per served version. */
export function crdTypes(crd: Obj): ResourceType[] {
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  const types: ResourceType[] = [];
  for (const v of spec.versions ?? []) {
    if (!v.served) continue;
    const cols: PrinterColumn[] = v.additionalPrinterColumns ?? [];
    // selectableFields (CustomResourceFieldSelectors): extra field selector labels from JSONPaths
    const selectable: string[] = (v.selectableFields ?? []).map((f: Obj) => String(f.jsonPath));
    const fieldLabels = selectable.length
      ? (o: Obj): Record<string, string> => Object.fromEntries(selectable.map((p) => {
        const val = jsonPath(o, p)[0];
        return [p.replace(/^\./, ''), val === undefined || val === null ? '' : String(val)];
      }))
      : undefined;
    types.push({
      group: spec.group, version: v.name, kind: names.kind, listKind: names.listKind ?? `${names.kind}List`, plural: names.plural,
      singular: names.singular ?? String(names.kind).toLowerCase(), namespaced: spec.scope === 'Namespaced', shortNames: names.shortNames ?? [],
      categories: names.categories ?? [], statusSubresource: !!v.subresources?.status, generation: true, allowUnconditionalUpdate: false,
      bucket: bucketOf(spec.group, names.plural), strategicMerge: false, schema: v.schema?.openAPIV3Schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      printerColumns: cols, crdName: crd.metadata.name, returnDeletedObject: true, fieldLabels,
      scale: v.subresources?.scale ? { specReplicasPath: v.subresources.scale.specReplicasPath, statusReplicasPath: v.subresources.scale.statusReplicasPath, labelSelectorPath: v.subresources.scale.labelSelectorPath } : undefined,
    });
  }
  return types;
}

export function crdEstablishedStatus(crd: Obj, ts: string): Obj {
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  return {
    conditions: [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: ts },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: ts },
    ],
    acceptedNames: { ...names, singular: names.singular ?? String(names.kind).toLowerCase(), listKind: names.listKind ?? `${names.kind}List` },
    storedVersions: (spec.versions ?? []).filter((v: Obj) => v.storage).map((v: Obj) => v.name),
  };
}

export function defaultCrd(crd: Obj): void {
  const spec = crd.spec ?? (crd.spec = {});
  const names = spec.names ?? (spec.names = {});
  if (names.kind && !names.singular) names.singular = String(names.kind).toLowerCase();
  if (names.kind && !names.listKind) names.listKind = `${names.kind}List`;
  spec.conversion ??= { strategy: 'None' };
  for (const v of spec.versions ?? []) {
    if (!v.additionalPrinterColumns) continue;
    for (const c of v.additionalPrinterColumns) c.priority ??= undefined;
  }
}

export function validateCrd(crd: Obj): FieldError[] {
  const errs: FieldError[] = [];
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  if (!spec.group) errs.push(fe.required('spec.group'));
  if (!names.plural) errs.push(fe.required('spec.names.plural'));
  if (!names.kind) errs.push(fe.required('spec.names.kind'));
  if (!['Cluster', 'Namespaced'].includes(spec.scope)) errs.push(fe.notSupported('spec.scope', spec.scope ?? '', ['Cluster', 'Namespaced']));
  if (spec.group && names.plural && crd.metadata.name !== `${names.plural}.${spec.group}`) {
    errs.push(fe.invalid('metadata.name', crd.metadata.name, 'must be spec.names.plural+"."+spec.group'));
  }
  const versions: Obj[] = spec.versions ?? [];
  if (!versions.length) errs.push(fe.required('spec.versions', 'must have exactly one version marked as storage version'));
  else if (versions.filter((v) => v.storage).length !== 1) errs.push(fe.invalid('spec.versions', versions.filter((v) => v.storage).length, 'must have exactly one version marked as storage version'));
  versions.forEach((v, i) => {
    const s = v.schema?.openAPIV3Schema;
    if (!s) errs.push(fe.required(`spec.versions[${i}].schema.openAPIV3Schema`, 'schemas are required'));
    else checkRulesCompile(s, `spec.versions[${i}].schema.openAPIV3Schema`, errs);
  });
  return errs;
}
