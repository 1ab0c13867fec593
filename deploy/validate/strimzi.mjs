// Validate Strimzi custom resources against the Strimzi CRD schemas, offline.
// Input on stdin: a JSON array of resources. Output: one JSON line per resource,
// {"index": i, "kind": ..., "name": ..., "valid": bool, "errors": [...]}; exit 1 if any
// resource is invalid or of an unknown kind/apiVersion.
import { readFileSync } from "node:fs";

const docs = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const [index, doc] of docs.entries()) {
  const [group, version] = String(doc.apiVersion || "").split("/");
  const name = doc.metadata && doc.metadata.name;
  let errors;
  if (group !== "kafka.strimzi.io" || !version || !doc.kind) {
    errors = [{ message: `not a Strimzi resource: ${doc.apiVersion} ${doc.kind}` }];
  } else {
    let Model;
    try {
      const mod = await import(`@kubernetes-models/strimzi-kafka-operator/${group}/${version}/${doc.kind}`);
      Model = mod[doc.kind];
    } catch (err) {
      errors = [{ message: `no schema for ${doc.apiVersion} ${doc.kind}: ${err.code || err}` }];
    }
    if (Model) {
      try {
        new Model(doc).validate();
        errors = [];
      } catch (err) {
        errors = err.errors || [{ message: String(err.message || err) }];
      }
    }
  }
  if (errors.length) bad++;
  console.log(JSON.stringify({ index, kind: doc.kind, name, valid: errors.length === 0, errors }));
}
process.exit(bad ? 1 : 0);
