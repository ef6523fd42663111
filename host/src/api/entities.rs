//! AVA's reply entities, shaped from what the runtime returns: topologies, live pipelines and
//! pipeline jobs with their `systemData`. The runtime speaks typed structs; the wire format is
//! made here only.

use crate::pipeline::jobs::{JobState, JobView};
use crate::pipeline::live::{Origin, PipelineView, TopologyEntry};
use crate::time::Time90k;
use serde_json::{Value, json};

/// AVA's `systemData`, with who last changed the entity (openva's addition: the API, or a file
/// of the watched topologies folder).
fn system_data(created: Time90k, modified: Time90k, origin: Option<&Origin>) -> Value {
    let mut v = json!({"createdAt": created.to_iso_millis(), "lastModifiedAt": modified.to_iso_millis()});
    match origin {
        None => {}
        Some(Origin::Api) => v["lastModifiedByType"] = json!("Api"),
        Some(Origin::File(f)) => {
            v["lastModifiedBy"] = json!(f);
            v["lastModifiedByType"] = json!("File");
        }
    }
    v
}

/// A pipeline topology as AVA returns it (secret defaults masked by the topology itself).
pub fn topology(e: &TopologyEntry) -> Value {
    let mut v = e.topology.to_entity_json();
    v["systemData"] = system_data(e.created, e.modified, Some(&e.origin));
    v
}

/// A live pipeline as AVA returns it. Values of secret parameters are left out (a topology
/// that is gone counts every value as secret: better hidden than leaked).
pub fn pipeline(p: &PipelineView) -> Value {
    let params: Vec<Value> = p
        .spec
        .parameters
        .iter()
        .map(|d| {
            if p.topology.as_ref().is_some_and(|t| !t.is_secret(&d.name)) {
                json!({"name": d.name, "value": d.value})
            } else {
                json!({"name": d.name})
            }
        })
        .collect();
    let mut props = json!({
        "topologyName": p.spec.topology_name,
        "parameters": params,
        "state": p.state.as_str(),
    });
    if let Some(d) = &p.spec.description {
        props["description"] = json!(d);
    }
    json!({"name": p.name, "systemData": system_data(p.created, p.modified, Some(&p.origin)), "properties": props})
}

fn ranges(r: &[(Time90k, Time90k)]) -> Value {
    Value::Array(r.iter().map(|(s, e)| json!({"start": s.to_iso_millis(), "end": e.to_iso_millis()})).collect())
}

/// A pipeline job as AVA returns it, with openva's report (mode, progress, what was exported
/// and the gaps found).
pub fn job(j: &JobView) -> Value {
    let mut props = json!({
        "topologyName": j.spec.topology_name,
        "state": j.state.as_str(),
        "expiration": j.expiration.to_iso_millis(),
        "parameters": j.spec.parameters.iter().map(|d| json!({"name": d.name, "value": d.value})).collect::<Vec<_>>(),
        "sourceVideoName": j.source_video,
        "outputVideoName": j.output_video,
        "mode": if j.encoded { "encode" } else { "copy" },
        "progressPercent": (j.progress * 1000.0).round() / 10.0,
        "exported": ranges(&j.exported),
        "gaps": ranges(&j.gaps),
    });
    if let Some(d) = &j.spec.description {
        props["description"] = json!(d);
    }
    if let Some(err) = &j.error {
        props["error"] = json!({"code": err.code, "message": err.message});
    }
    if let Some(t) = j.started {
        props["startedAt"] = json!(t.to_iso_millis());
    }
    if let Some(t) = j.finished {
        props["finishedAt"] = json!(t.to_iso_millis());
    }
    if j.state == JobState::Completed {
        props["frames"] = json!(j.frames);
        props["bytes"] = json!(j.bytes);
    }
    json!({"name": j.name, "properties": props, "systemData": system_data(j.created, j.modified, None)})
}
