//! Tests: the AVA corpus, the sample topology, each validation rule, and a fuzzing property.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::time::Duration90k;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> PathBuf {
    repo().join("tests/corpus/ava")
}

/// The JSON files of a corpus folder, sorted, as (file name, text).
fn files(dir: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(corpus().join(dir))
        .expect("corpus folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read corpus file"))
        })
        .collect();
    out.sort();
    out
}

/// Every corpus topology that is valid JSON (current and history).
fn valid_corpus() -> Vec<(String, String)> {
    let mut all = files("topologies");
    all.extend(files("topologies-history").into_iter().filter(|(n, _)| !n.contains("INVALID")));
    all
}

fn ctx() -> InstanceContext {
    InstanceContext {
        topology_name: "T".to_owned(),
        pipeline_name: "p-1".to_owned(),
        now: "2024-02-29T13:04:05.007Z".parse().expect("timestamp"),
    }
}

fn def(name: &str, value: &str) -> ParameterDefinition {
    ParameterDefinition { name: name.to_owned(), value: value.to_owned() }
}

/// Values for every required parameter of `t`, plausible for the property they feed.
fn required_values(t: &Topology) -> Vec<ParameterDefinition> {
    t.parameters
        .iter()
        .filter(|p| p.default.is_none())
        .map(|p| {
            let lower = p.name.to_ascii_lowercase();
            let value = if lower.contains("rtspurl") {
                "rtsp://camera.example:554/stream".to_owned()
            } else if lower.contains("timesequence") {
                // Batch sources are typed once substituted: a real range.
                r#"[["2021-10-05T03:30:00Z", "2021-10-05T03:40:00Z"]]"#.to_owned()
            } else {
                format!("value-{}", p.name.len())
            };
            ParameterDefinition { name: p.name.clone(), value }
        })
        .collect()
}

// ---------------------------------------------------------------- corpus

#[test]
fn every_current_corpus_topology_parses_and_instantiates() {
    let all = files("topologies");
    assert_eq!(all.len(), 31, "the corpus has 31 current topologies");
    for (name, text) in all {
        let t = parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!t.nodes.is_empty(), "{name}");
        let inst = t.instantiate(&ctx(), &required_values(&t)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(inst.nodes.len(), t.nodes.len(), "{name}");
        // Every node of the corpus is from the catalogue.
        assert!(t.nodes.iter().all(|n| n.known), "{name}");
    }
}

#[test]
fn every_valid_history_topology_parses_and_instantiates() {
    let hist: Vec<_> = files("topologies-history").into_iter().filter(|(n, _)| !n.contains("INVALID")).collect();
    assert_eq!(hist.len(), 14);
    for (name, text) in hist {
        let t = parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        t.instantiate(&ctx(), &required_values(&t)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn invalid_json_history_file_is_a_syntax_error_with_position() {
    let (name, text) = files("topologies-history")
        .into_iter()
        .find(|(n, _)| n.contains("INVALID-JSON"))
        .expect("the INVALID-JSON file");
    let e = parse_str(&text).expect_err(&name);
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.kind.detail_code(), "InvalidJson");
    let pos = e.message.strip_prefix("invalid JSON at ").expect("position prefix");
    let (line, rest) = pos.split_once(':').expect("line:col");
    let col = rest.split(':').next().expect("col");
    assert!(line.parse::<usize>().expect("line number") > 1, "{}", e.message);
    assert!(col.parse::<usize>().is_ok(), "{}", e.message);
}

#[test]
fn corpus_shapes_are_read_as_expected() {
    let t = parse_str(
        &std::fs::read_to_string(corpus().join("topologies/cloud-record-camera-behind-firewall.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(t.name, "record-camera-behind-firewall");
    assert!(t.is_secret("rtspPasswordParameter"));
    assert!(!t.is_secret("rtsppasswordparameter"), "parameter names are case-sensitive");
    let t = parse_str(&std::fs::read_to_string(corpus().join("topologies/line-crossing.json")).unwrap()).unwrap();
    let types: Vec<_> = t.nodes.iter().map(|n| (n.role, n.type_name.as_str())).collect();
    assert_eq!(
        types,
        [
            (NodeRole::Source, "RtspSource"),
            (NodeRole::Processor, "HttpExtension"),
            (NodeRole::Processor, "ObjectTrackingProcessor"),
            (NodeRole::Processor, "LineCrossingProcessor"),
            (NodeRole::Sink, "IotHubMessageSink"),
        ]
    );
    let t = parse_str(&std::fs::read_to_string(corpus().join("topologies/audio-video.json")).unwrap()).unwrap();
    let sink = t.node("videoSink").unwrap();
    assert_eq!(
        sink.inputs[0].output_selectors,
        [OutputSelector {
            property: "mediaType".to_owned(),
            operator: SelectorOperator::IsNot,
            value: "application".to_owned()
        }]
    );
    // Old spellings map to the catalogue's.
    let t =
        parse_str(&std::fs::read_to_string(corpus().join("topologies-history/spatial-analysis@18d9447.json")).unwrap())
            .unwrap();
    assert_eq!(t.node("computerVisionExtension").unwrap().type_name, "CognitiveServicesVisionProcessor");
    assert_eq!(t.node("hubSink").unwrap().type_name, "IotHubMessageSink");
}

#[test]
fn operations_scripts_drive_corpus_topologies() {
    let mut live_sets = 0;
    for (name, text) in files("operations") {
        let script: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for op in script["operations"].as_array().expect("operations") {
            let params = &op["opParams"];
            match op["opName"].as_str().expect("opName") {
                // The scripts only reference topologies by URL or file (placeholders in the
                // samples); an embedded topology would be under "properties".
                "pipelineTopologySet" => {
                    if params.get("properties").is_some() {
                        parse(params).unwrap_or_else(|e| panic!("{name}: {e}"));
                    } else {
                        assert!(
                            params.get("pipelineTopologyUrl").or(params.get("pipelineTopologyFile")).is_some(),
                            "{name}"
                        );
                    }
                }
                "livePipelineSet" => {
                    live_sets += 1;
                    validate_name("live pipeline", params["name"].as_str().unwrap()).unwrap();
                    validate_name("topology", params["properties"]["topologyName"].as_str().unwrap()).unwrap();
                    let values: Vec<ParameterDefinition> =
                        serde_json::from_value(params["properties"]["parameters"].clone()).unwrap();
                    // Run these values against every corpus topology that declares them all.
                    let mut used = 0;
                    for (tname, ttext) in valid_corpus() {
                        let t = parse_str(&ttext).unwrap();
                        if !values.iter().all(|v| t.parameter(&v.name).is_some()) {
                            continue;
                        }
                        let mut all = values.clone();
                        all.extend(
                            required_values(&t).into_iter().filter(|r| !values.iter().any(|v| v.name == r.name)),
                        );
                        let inst = t.instantiate(&ctx(), &all).unwrap_or_else(|e| panic!("{tname}: {e}"));
                        let Some(NodeConfig::RtspSource(rtsp)) = inst.nodes.first().map(|n| &n.config) else {
                            panic!("{tname}: first node is the RTSP source")
                        };
                        assert_eq!(rtsp.url, "rtsp://rtspsim:554/media/camera-300s.mkv");
                        // `evr-hubMessage-files@6567183` writes "{rtspPassword}" (no '$'): a
                        // literal password, kept as such.
                        let raw = &t.nodes[0].body["endpoint"]["credentials"]["password"];
                        if raw == "${rtspPassword}" {
                            assert_eq!(rtsp.password.as_deref(), Some("testpassword"), "{tname}");
                        } else {
                            assert_eq!(rtsp.password.as_deref(), raw.as_str(), "{tname}");
                        }
                        used += 1;
                    }
                    assert!(used >= 25, "{name}: only {used} topologies took the sample values");
                }
                _ => {}
            }
        }
    }
    assert_eq!(live_sets, 2);
}

// ---------------------------------------------------------------- the sample topology

fn sample() -> Topology {
    parse_str(&std::fs::read_to_string(repo().join("topologies/cvr-video.json")).expect("sample")).expect("parses")
}

#[test]
fn sample_topology_instantiates() {
    let t = sample();
    assert_eq!(t.name, "CVRToVideoSink");
    assert!(t.is_secret("rtspPassword"));
    let inst = t.instantiate(&ctx(), &[def("rtspUrl", "rtsp://cam.local:554/h264")]).unwrap();
    assert_eq!(inst.nodes.len(), 2);
    assert_eq!(
        inst.nodes[0].config,
        NodeConfig::RtspSource(RtspSourceConfig {
            url: "rtsp://cam.local:554/h264".to_owned(),
            username: Some("dummyUserName".to_owned()),
            password: Some("dummyPassword".to_owned()),
            transport: RtspTransport::Tcp,
        })
    );
    assert_eq!(inst.nodes[1].name, "videoSink");
    assert_eq!(inst.nodes[1].inputs[0].node_name, "rtspSource");
    assert_eq!(
        inst.nodes[1].config,
        NodeConfig::VideoSink(VideoSinkConfig {
            video_name: "sample-cvr-video".to_owned(),
            title: Some("Sample CVR video".to_owned()),
            description: Some("Continuous video recording from one camera".to_owned()),
            segment_length: Some(Duration90k::from_secs(30)),
            retention: Some(Duration90k::from_days(7)),
            // AVA's cache size is kept for the cache, never a cap on the archive.
            max_bytes: None,
            cache_max_bytes: Some(2048 * 1024 * 1024),
            cache_path: Some("/var/lib/videoanalyzer/tmp/".to_owned()),
        })
    );
    let debug = format!("{:?}", inst.nodes[0].config);
    assert!(!debug.contains("dummyPassword") && debug.contains("******"), "{debug}");
    // Overrides win over defaults.
    let inst = t
        .instantiate(
            &ctx(),
            &[
                def("rtspUrl", "rtsps://cam/x"),
                def("segmentLength", "PT2M"),
                def("rtspPassword", ""),
                def("videoName", "v.1"),
            ],
        )
        .unwrap();
    let NodeConfig::RtspSource(r) = &inst.nodes[0].config else { panic!() };
    assert_eq!(r.password, None, "empty credentials mean none");
    let NodeConfig::VideoSink(v) = &inst.nodes[1].config else { panic!() };
    assert_eq!((v.video_name.as_str(), v.segment_length), ("v.1", Some(Duration90k::from_secs(120))));
    // The required URL.
    let e = t.instantiate(&ctx(), &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ModuleValidation);
    assert!(e.message.contains("'rtspUrl'"), "{}", e.message);
}

#[test]
fn sample_topology_masks_its_secret() {
    let t = sample();
    let entity = t.to_entity_json();
    let text = serde_json::to_string(&entity).unwrap();
    assert!(!text.contains("dummyPassword"), "{text}");
    assert_eq!(entity["name"], "CVRToVideoSink");
    assert_eq!(entity["properties"]["parameters"][2]["default"], SECRET_MASK);
    assert_eq!(entity["properties"]["parameters"][1]["default"], "dummyUserName");
    assert_eq!(entity["properties"]["sinks"][0]["videoName"], "${videoName}");
    // The masked entity is still a valid topology.
    assert_eq!(parse(&entity).unwrap().nodes, t.nodes);
}

#[test]
fn every_spelling_of_a_secret_default_is_masked() {
    let mut v = base();
    v["properties"]["parameters"][1]["Default"] = json!("other-secret");
    let t = parse(&v).unwrap();
    let text = serde_json::to_string(&t.to_entity_json()).unwrap();
    assert!(!text.contains("s3cret") && !text.contains("other-secret"), "{text}");
}

// ---------------------------------------------------------------- unit rules

/// A small valid topology: RTSP source → video sink, one required and one secret parameter.
fn base() -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "T",
        "properties": {
            "parameters": [
                {"name": "rtspUrl", "type": "String"},
                {"name": "pwd", "type": "SecretString", "default": "s3cret"}
            ],
            "sources": [{
                "@type": "#Microsoft.VideoAnalyzer.RtspSource",
                "name": "rtspSource",
                "endpoint": {
                    "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint",
                    "url": "${rtspUrl}",
                    "credentials": {
                        "@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials",
                        "username": "admin",
                        "password": "${pwd}"
                    }
                }
            }],
            "sinks": [{
                "@type": "#Microsoft.VideoAnalyzer.VideoSink",
                "name": "videoSink",
                "videoName": "cam-${System.PipelineName}",
                "inputs": [{"nodeName": "rtspSource"}]
            }]
        }
    })
}

fn err(v: &Value) -> TopologyError {
    parse(v).expect_err("should be refused")
}

fn assert_err(e: &TopologyError, kind: ErrorKind, needles: &[&str]) {
    assert_eq!(e.kind, kind, "{}", e.message);
    for n in needles {
        assert!(e.message.contains(n), "'{}' does not mention '{n}'", e.message);
    }
}

fn url() -> Vec<ParameterDefinition> {
    vec![def("rtspUrl", "rtsp://user:pw@cam/stream")]
}

/// Adds a processor node and returns the value.
fn with_processor(mut v: Value, node: Value) -> Value {
    v["properties"]["processors"].as_array_mut().map(|a| a.push(node.clone())).unwrap_or_else(|| {
        v["properties"]["processors"] = json!([node]);
    });
    v
}

fn vat(t: &str) -> String {
    format!("#Microsoft.VideoAnalyzer.{t}")
}

#[test]
fn base_is_valid() {
    let t = parse(&base()).unwrap();
    assert_eq!(t.nodes.len(), 2);
    t.instantiate(&ctx(), &url()).unwrap();
}

#[test]
fn names_follow_ava_rules() {
    for good in ["a", "A-1", "abcdefghijabcdefghijabcdefghij12"] {
        validate_name("topology", good).unwrap();
    }
    for bad in ["", "-a", "a-", "a b", "x/../y", "a_b", "abcdefghijabcdefghijabcdefghij123", "é"] {
        let e = validate_name("live pipeline", bad).unwrap_err();
        assert_err(&e, ErrorKind::ModuleValidation, &["invalid live pipeline name"]);
    }
    let e = validate_name("live pipeline", "x/../y").unwrap_err();
    assert!(e.message.starts_with("invalid live pipeline name 'x/../y': "), "{}", e.message);

    let mut v = base();
    v["name"] = json!("bad name");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["topology name"]);
    let mut v = base();
    v["properties"]["sinks"][0]["name"] = json!("video_sink");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["node name 'video_sink'"]);
}

#[test]
fn duplicate_nodes_are_refused() {
    let mut v = base();
    v["properties"]["sinks"][0]["name"] = json!("RTSPSOURCE");
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["RTSPSOURCE", "more than once"]);
}

#[test]
fn missing_inputs_are_refused() {
    let mut v = base();
    v["properties"]["sinks"][0]["inputs"] = json!([{"nodeName": "nowhere"}]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["videoSink", "nowhere"]);
    let mut v = base();
    v["properties"]["sinks"][0]["inputs"] = json!([]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["videoSink", "no inputs"]);
    let mut v = base();
    v["properties"]["sources"][0]["inputs"] = json!([{"nodeName": "videoSink"}]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["rtspSource", "cannot have inputs"]);
    let mut v = base();
    v["properties"]["sinks"] = json!([]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["no sink"]);
    let mut v = base();
    v["properties"].as_object_mut().unwrap().remove("sources");
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["no source"]);
}

#[test]
fn cycles_are_refused() {
    let mut v = base();
    for (name, input) in [("a", "b"), ("b", "a")] {
        v = with_processor(v, json!({"@type": vat("HttpExtensionX"), "name": name, "inputs": [{"nodeName": input}]}));
    }
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["cycle", "'a'", "'b'"]);
    let v = with_processor(base(), json!({"@type": vat("Mystery"), "name": "self", "inputs": [{"nodeName": "self"}]}));
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["cycle", "'self'"]);
}

#[test]
fn placement_rules() {
    // Two RTSP sources.
    let mut v = base();
    let mut second = v["properties"]["sources"][0].clone();
    second["name"] = json!("rtspSource2");
    v["properties"]["sources"].as_array_mut().unwrap().push(second);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["only one RtspSource"]);

    // Motion detection after something else than the RTSP source.
    let ext = json!({
        "@type": vat("HttpExtension"), "name": "ext",
        "endpoint": {"@type": vat("UnsecuredEndpoint"), "url": "http://ai/score"},
        "image": {"format": {"@type": vat("ImageFormatBmp")}},
        "inputs": [{"nodeName": "rtspSource"}]
    });
    let v = with_processor(
        with_processor(base(), ext.clone()),
        json!({"@type": vat("MotionDetectionProcessor"), "name": "motion", "inputs": [{"nodeName": "ext"}]}),
    );
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["motion", "RtspSource", "'ext'"]);

    // Object tracker right after the source; line crossing after the extension.
    let v = with_processor(
        base(),
        json!({"@type": vat("ObjectTrackingProcessor"), "name": "tracker", "inputs": [{"nodeName": "rtspSource"}]}),
    );
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["tracker", "extension"]);
    let v = with_processor(
        with_processor(base(), ext.clone()),
        json!({"@type": vat("LineCrossingProcessor"), "name": "lines", "lines": [], "inputs": [{"nodeName": "ext"}]}),
    );
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["lines", "ObjectTrackingProcessor"]);

    // A signal gate feeding an extension; a signal gate without the RTSP source.
    let gate = json!({"@type": vat("SignalGateProcessor"), "name": "gate", "inputs": [{"nodeName": "rtspSource"}]});
    let mut ext2 = ext.clone();
    ext2["inputs"] = json!([{"nodeName": "gate"}]);
    let v = with_processor(with_processor(base(), gate.clone()), ext2);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["gate", "'ext'"]);
    let mut v = with_processor(base(), json!({"@type": vat("IotHubMessageSource"), "name": "hub"}));
    v["properties"]["sources"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@type": vat("IotHubMessageSource"), "name": "hub"}));
    v["properties"]["processors"] =
        json!([{"@type": vat("SignalGateProcessor"), "name": "gate", "inputs": [{"nodeName": "hub"}]}]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["gate", "RtspSource"]);

    // A file sink straight after the source.
    let mut v = base();
    v["properties"]["sinks"].as_array_mut().unwrap().push(json!({
        "@type": vat("FileSink"), "name": "files", "baseDirectoryPath": "/m", "fileNamePattern": "x-${System.Runtime.DateTime}",
        "maximumSizeMiB": "10", "inputs": [{"nodeName": "rtspSource"}]
    }));
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["files", "SignalGateProcessor"]);

    // A gate nothing can open (its only input is the media), and a gate that feeds no sink.
    let mut v = with_processor(base(), gate.clone());
    v["properties"]["sinks"][0]["inputs"] = json!([{"nodeName": "gate"}]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["gate", "processor or an IotHubMessageSource"]);
    let motion =
        json!({"@type": vat("MotionDetectionProcessor"), "name": "motion", "inputs": [{"nodeName": "rtspSource"}]});
    let mut opened = gate.clone();
    opened["inputs"] = json!([{"nodeName": "motion"}, {"nodeName": "rtspSource"}]);
    let v = with_processor(with_processor(base(), motion.clone()), opened.clone());
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["gate", "feeds no sink"]);
    // Two file sinks behind it: both named.
    let mut v = with_processor(with_processor(base(), motion), opened);
    for name in ["files", "moreFiles"] {
        v["properties"]["sinks"].as_array_mut().unwrap().push(json!({
            "@type": vat("FileSink"), "name": name, "baseDirectoryPath": "/m",
            "fileNamePattern": "x-${System.Runtime.DateTime}", "maximumSizeMiB": "10", "inputs": [{"nodeName": "gate"}]
        }));
    }
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["only one FileSink", "'files'", "'moreFiles'"]);

    // A video sink fed only by an extension.
    let mut v = with_processor(base(), ext.clone());
    v["properties"]["sinks"][0]["inputs"] = json!([{"nodeName": "ext"}]);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["videoSink", "RtspSource"]);

    // A node in the wrong list.
    let mut v = base();
    v["properties"]["processors"] = json!([v["properties"]["sinks"][0].clone()]);
    v["properties"]["processors"][0]["name"] = json!("sinkAsProcessor");
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["sinkAsProcessor", "sinks"]);

    // Unknown node types are accepted and are wildcards for placement.
    let mut v = with_processor(
        base(),
        json!({"@type": vat("Transcoder"), "name": "tx", "inputs": [{"nodeName": "rtspSource"}]}),
    );
    v["properties"]["sinks"][0]["inputs"] = json!([{"nodeName": "tx"}]);
    let t = parse(&v).unwrap();
    let tx = t.node("tx").unwrap();
    assert_eq!((tx.type_name.as_str(), tx.known), ("Transcoder", false));
    let inst = t.instantiate(&ctx(), &url()).unwrap();
    assert_eq!(inst.nodes[1].config, NodeConfig::Other { type_name: "Transcoder".to_owned() });
}

#[test]
fn required_properties_are_checked() {
    let mut v = base();
    v["properties"]["sources"][0]["endpoint"].as_object_mut().unwrap().remove("url");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["rtspSource", "endpoint.url"]);
    let mut v = base();
    v["properties"]["sinks"][0].as_object_mut().unwrap().remove("videoName");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", "videoName"]);
    let mut v = base();
    v["properties"]["sinks"].as_array_mut().unwrap().push(json!({
        "@type": vat("IotHubMessageSink"), "name": "hub", "inputs": [{"nodeName": "rtspSource"}]
    }));
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["hub", "hubOutputName"]);
}

#[test]
fn parameter_references_must_be_declared() {
    let mut v = base();
    v["properties"]["sinks"][0]["videoName"] = json!("cam-${nope}");
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["videoSink", "${nope}"]);
    // Names are case-sensitive; system variables are not.
    let mut v = base();
    v["properties"]["sources"][0]["endpoint"]["url"] = json!("${RTSPURL}");
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["${RTSPURL}"]);
    let mut v = base();
    v["properties"]["sinks"][0]["videoName"] = json!("${system.topologyname}");
    parse(&v).unwrap();
    // Unreferenced declarations are allowed (the corpus has them).
    let mut v = base();
    v["properties"]["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "unused", "type": "Int", "default": "1"}));
    parse(&v).unwrap();
}

#[test]
fn parameter_declarations_are_checked() {
    let mut v = base();
    v["properties"]["parameters"][1]["type"] = json!("Password");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["pwd", "Password"]);
    let mut v = base();
    v["properties"]["parameters"][1]["name"] = json!("rtspUrl");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["rtspUrl", "more than once"]);
    let mut v = base();
    v["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "n", "type": "int", "default": "ten"}));
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["'n'", "ten"]);
    let mut v = base();
    v["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "n", "type": "DOUBLE", "default": 2.5}));
    assert_eq!(parse(&v).unwrap().parameters[2].default.as_deref(), Some("2.5"), "scalar defaults are accepted");
}

#[test]
fn parameter_values_are_checked() {
    let mut v = base();
    v["properties"]["parameters"].as_array_mut().unwrap().extend([
        json!({"name": "i", "type": "Int", "default": "1"}),
        json!({"name": "d", "type": "Double", "default": "1.5"}),
        json!({"name": "b", "type": "Bool", "default": "true"}),
    ]);
    let t = parse(&v).unwrap();
    let with = |extra: &[(&str, &str)]| {
        let mut vals = url();
        vals.extend(extra.iter().map(|(n, x)| def(n, x)));
        t.check_parameters(&vals)
    };
    with(&[("i", "-2147483648"), ("d", "1e3"), ("b", "FALSE")]).unwrap();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("i", "2147483648")], "'i'"),
        (&[("i", "1.0")], "'i'"),
        (&[("d", "NaN")], "'d'"),
        (&[("d", "inf")], "'d'"),
        (&[("b", "yes")], "'b'"),
        (&[("ghost", "1")], "'ghost'"),
        (&[("i", "1"), ("i", "2")], "more than once"),
    ];
    for (extra, needle) in cases {
        let e = with(extra).unwrap_err();
        assert_err(&e, ErrorKind::ModuleValidation, &[needle]);
    }
    let e = t.check_parameters(&[]).unwrap_err();
    assert_err(&e, ErrorKind::ModuleValidation, &["'rtspUrl'", "required"]);
    // check_parameters runs inside instantiate too.
    assert!(t.instantiate(&ctx(), &[def("rtspUrl", "rtsp://c/s"), def("ghost", "1")]).is_err());
}

#[test]
fn parameter_definitions_deserialize_leniently() {
    let v: Vec<ParameterDefinition> = serde_json::from_value(
        json!([{"name": "a", "value": "x"}, {"Name": "b", "Value": 5}, {"name": "c", "value": true}]),
    )
    .unwrap();
    assert_eq!(v, [def("a", "x"), def("b", "5"), def("c", "true")]);
    assert!(serde_json::from_value::<ParameterDefinition>(json!({"name": "a", "value": {}})).is_err());
}

#[test]
fn runtime_date_time_is_not_allowed_in_video_names() {
    for var in ["${System.Runtime.DateTime}", "${System.Runtime.PreciseDateTime}", "${System.DateTime}"] {
        let mut v = base();
        v["properties"]["sinks"][0]["videoName"] = json!(format!("cam-{var}"));
        assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", "videoName"]);
    }
}

#[test]
fn system_variables_are_substituted() {
    let mut v = base();
    v["properties"]["sinks"].as_array_mut().unwrap().push(json!({
        "@type": vat("Recorder"), "name": "other", "inputs": [{"nodeName": "rtspSource"}],
        "pattern": "${System.TopologyName}/${System.PipelineName}/${System.Runtime.DateTime}/${System.Runtime.PreciseDateTime}/${System.DateTime}",
        "nested": [{"deep": "x${pwd}y${pwd}"}, 5, null],
        "literal": "${unterminated"
    }));
    let t = parse(&v).unwrap();
    let c = ctx();
    let bodies = t.substituted_nodes(&c, &url()).unwrap();
    assert_eq!(bodies[2]["pattern"], "T/p-1/20240229T130405Z/20240229T130405.007Z/20240229T130405Z",);
    assert_eq!(bodies[2]["nested"], json!([{"deep": "xs3cretys3cret"}, 5, null]));
    assert_eq!(bodies[2]["literal"], "${unterminated");
    let inst = t.instantiate(&c, &url()).unwrap();
    let NodeConfig::VideoSink(s) = &inst.nodes[1].config else { panic!() };
    assert_eq!(s.video_name, "cam-p-1");
    // A value holding a reference stays literal (no second round of substitution).
    let bodies = t.substituted_nodes(&c, &[def("rtspUrl", "rtsp://c/${pwd}")]).unwrap();
    assert_eq!(bodies[0]["endpoint"]["url"], "rtsp://c/${pwd}");
    assert_eq!(format_runtime_date_times("1999-12-31T23:59:59.9999Z".parse().unwrap()).1, "19991231T235959.999Z");
}

#[test]
fn keys_and_enums_are_case_insensitive() {
    let v = json!({
        "Name": "T",
        "Kind": "live",
        "Properties": {
            "Parameters": [{"Name": "u", "Type": "string"}, {"NAME": "n", "TYPE": "int", "DEFAULT": "3"}],
            "Sources": [{
                "@Type": "#microsoft.videoanalyzer.rtspsource",
                "NAME": "src",
                "Transport": "HTTP",
                "Endpoint": {"URL": "${u}"}
            }],
            "Sinks": [{
                "@type": "#Microsoft.VideoAnalyzer.VIDEOSINK",
                "name": "sink",
                "VideoName": "v",
                "VideoCreationProperties": {"SegmentLength": "pt1m", "RETENTIONPERIOD": "P30D"},
                "LocalMediaCacheMaximumSizeMiB": 64,
                "Inputs": [{"NodeName": "src", "OutputSelectors": [{"Property": "MEDIATYPE", "Operator": "ISNOT", "Value": "Audio"}]}]
            }]
        }
    });
    let t = parse(&v).unwrap();
    assert_eq!(t.parameters[1].kind, ParameterType::Int);
    assert_eq!(t.nodes[1].inputs[0].output_selectors[0].operator, SelectorOperator::IsNot);
    assert_eq!(t.nodes[1].inputs[0].output_selectors[0].value, "audio");
    let inst = t.instantiate(&ctx(), &[def("u", "RTSP://cam/1")]).unwrap();
    let NodeConfig::RtspSource(r) = &inst.nodes[0].config else { panic!() };
    assert_eq!((r.transport, r.username.as_deref()), (RtspTransport::Http, None));
    let NodeConfig::VideoSink(s) = &inst.nodes[1].config else { panic!() };
    assert_eq!(s.segment_length, Some(Duration90k::from_secs(60)));
    assert_eq!(s.retention, Some(Duration90k::from_days(30)));
    assert_eq!(s.cache_max_bytes, Some(64 << 20));
    let mut v = base();
    v["properties"]["sources"][0]["transport"] = json!("Udp");
    let inst = parse(&v).unwrap().instantiate(&ctx(), &url()).unwrap();
    let NodeConfig::RtspSource(r) = &inst.nodes[0].config else { panic!() };
    assert_eq!(r.transport, RtspTransport::Udp);
}

#[test]
fn legacy_lva_prefix_is_accepted() {
    let mut v = base();
    v["properties"]["sources"][0]["@type"] = json!("#Microsoft.Media.MediaGraphRtspSource");
    v["properties"]["sources"][0]["endpoint"]["credentials"]["@type"] =
        json!("#Microsoft.Media.MediaGraphUsernamePasswordCredentials");
    v["properties"]["sinks"][0]["@type"] = json!("#Microsoft.Media.MediaGraphVideoSink");
    let t = parse(&v).unwrap();
    assert_eq!(t.nodes[0].type_name, "RtspSource");
    assert!(t.nodes[0].known);
    t.instantiate(&ctx(), &url()).unwrap();
    let mut v = base();
    v["properties"]["sinks"][0]["@type"] = json!("VideoSink");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", "@type"]);
}

#[test]
fn video_sink_values_are_checked() {
    let bad: [(&str, Value, &str); 12] = [
        ("/videoCreationProperties", json!({"segmentLength": "PT45S"}), "segmentLength"),
        ("/videoCreationProperties", json!({"segmentLength": "PT10M"}), "segmentLength"),
        ("/videoCreationProperties", json!({"segmentLength": "PT0S"}), "segmentLength"),
        ("/videoCreationProperties", json!({"segmentLength": "30s"}), "segmentLength"),
        ("/videoCreationProperties", json!({"retentionPeriod": "PT12H"}), "retentionPeriod"),
        ("/videoCreationProperties", json!({"retentionPeriod": "P3651D"}), "retentionPeriod"),
        ("/videoCreationProperties", json!({"title": "t".repeat(257)}), "title"),
        ("/videoCreationProperties", json!({"description": "d".repeat(2049)}), "description"),
        ("/localMediaCacheMaximumSizeMiB", json!("0"), "localMediaCacheMaximumSizeMiB"),
        ("/videoCreationProperties", json!({"maximumSizeMiB": "0"}), "maximumSizeMiB"),
        ("/videoCreationProperties", json!({"maximumSizeMiB": "1.5"}), "maximumSizeMiB"),
        ("/videoName", json!(".hidden"), "videoName"),
    ];
    for (path, value, needle) in bad {
        let mut v = base();
        let key = path.trim_start_matches('/');
        v["properties"]["sinks"][0][key] = value.clone();
        assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", needle]);
        // The same through a parameter is caught at instantiation.
        let mut v = base();
        v["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "x", "type": "String"}));
        let (field, inner) = match value {
            Value::Object(o) => {
                let (k, x) = o.into_iter().next().unwrap();
                v["properties"]["sinks"][0][key] = json!({ k.clone(): "${x}" });
                (k, x)
            }
            x => {
                v["properties"]["sinks"][0][key] = json!("${x}");
                (key.to_owned(), x)
            }
        };
        let t = parse(&v).unwrap_or_else(|e| panic!("{field}: {e}"));
        let mut vals = url();
        vals.push(def("x", inner.as_str().unwrap()));
        let e = t.instantiate(&ctx(), &vals).unwrap_err();
        assert_err(&e, ErrorKind::ModuleValidation, &["videoSink", needle]);
    }
    for good in ["PT30S", "PT1M30S", "PT5M", "PT300S"] {
        let mut v = base();
        v["properties"]["sinks"][0]["videoCreationProperties"] = json!({"segmentLength": good});
        parse(&v).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn rtsp_source_values_are_checked_without_leaking_passwords() {
    let t = parse(&base()).unwrap();
    for (u, needle) in [
        ("http://user:hunter2@cam/x", "scheme"),
        ("not a url user:hunter2@cam", "endpoint.url"),
        ("rtsp://user:hunter2@[::1/x", "endpoint.url"),
        ("rtsp:hunter2@x", "endpoint.url"),
        ("rtsp://user:hun/ter2@cam:x/y", "endpoint.url"),
        ("rtsp://user:hunter2#@cam/x", "endpoint.url"),
    ] {
        let e = t.instantiate(&ctx(), &[def("rtspUrl", u)]).unwrap_err();
        assert_err(&e, ErrorKind::ModuleValidation, &["rtspSource", needle]);
        assert!(!e.message.contains("hunter2") && !e.message.contains("ter2"), "{}", e.message);
    }
    let inst = t.instantiate(&ctx(), &[def("rtspUrl", "rtsp://u:hunter2@cam/x")]).unwrap();
    let debug = format!("{:?}", inst.nodes[0].config);
    assert!(!debug.contains("hunter2") && debug.contains("rtsp://***@cam/x"), "{debug}");
    let mut v = base();
    v["properties"]["sources"][0]["transport"] = json!("carrier-pigeon");
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["rtspSource", "transport"]);
    let mut v = base();
    v["properties"]["sources"][0]["endpoint"]["credentials"]["@type"] = json!(vat("HttpHeaderCredentials"));
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["rtspSource", "credentials"]);
}

#[test]
fn limits_are_enforced() {
    let mut v = base();
    let many: Vec<Value> =
        (0..1001).map(|i| json!({"name": format!("p{i}"), "type": "String", "default": ""})).collect();
    v["properties"]["parameters"] = json!(many);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["1001 parameters"]);
    let mut v = base();
    let sinks: Vec<Value> = (0..1000)
        .map(|i| json!({"@type": vat("VideoSink"), "name": format!("s{i}"), "videoName": "v", "inputs": [{"nodeName": "rtspSource"}]}))
        .collect();
    v["properties"]["sinks"] = json!(sinks);
    assert_err(&err(&v), ErrorKind::PipelineValidation, &["1001 nodes"]);
    let mut v = base();
    v["properties"]["sinks"][0]["title"] = json!("x".repeat(MAX_STRING_LEN + 1));
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", "64 KiB"]);
    // Substitution cannot blow a value up past the limit.
    let mut v = base();
    v["properties"]["sinks"][0]["note"] = json!("${pwd}".repeat(1000));
    let t = parse(&v).unwrap();
    let e = t.instantiate(&ctx(), &[def("rtspUrl", "rtsp://c/s"), def("pwd", &"y".repeat(1000))]).unwrap_err();
    assert_err(&e, ErrorKind::ModuleValidation, &["videoSink", "64 KiB"]);
    // Nor can many values, each under the limit, add up to a bomb.
    let mut v = base();
    for i in 0..40 {
        v["properties"]["sinks"][0][format!("note{i}")] = json!("${pwd}".repeat(60));
    }
    let t = parse(&v).unwrap();
    let e = t.instantiate(&ctx(), &[def("rtspUrl", "rtsp://c/s"), def("pwd", &"y".repeat(1000))]).unwrap_err();
    assert_err(&e, ErrorKind::ModuleValidation, &["1 MiB in all"]);
    // Deep nesting is refused, not overflowing the stack.
    let mut deep = json!("x");
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let mut v = base();
    v["properties"]["sinks"][0]["deep"] = deep;
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["videoSink", "nested"]);
    let mut deep = json!("x");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut v = base();
    v["properties"]["extra"] = deep;
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["nested more than 128"]);
}

#[test]
fn shapes_that_are_not_topologies_are_refused() {
    for v in [json!(null), json!([]), json!("x"), json!({}), json!({"name": "a"}), json!({"name": 1, "properties": {}})]
    {
        assert!(parse(&v).is_err(), "{v}");
    }
    let mut v = base();
    v["properties"]["sinks"] = json!({"not": "a list"});
    assert_err(&err(&v), ErrorKind::ModuleValidation, &["sinks"]);
    assert_eq!(ErrorKind::PipelineValidation.detail_code(), "PipelineValidationError");
    assert_eq!(ErrorKind::ModuleValidation.detail_code(), "ModuleValidationError");
}

// ---------------------------------------------------------------- fuzzing

mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::*;
    use super::{ctx, required_values, valid_corpus};

    /// Replacement values: every JSON type, references good and bad, odd text.
    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,24}".prop_map(Value::String),
            prop::sample::select(vec![
                "${rtspUrl}",
                "${System.Runtime.DateTime}",
                "${",
                "${}",
                "${${x}}",
                "$",
                "}",
                "rtsp://a:b@c/d",
                "PT30S",
                "P0D",
                "-PT5S",
                "tcp",
                "#Microsoft.VideoAnalyzer.VideoSink",
                "#Microsoft.Media.MediaGraph",
                "#Microsoft.VideoAnalyzer.SignalGateProcessor",
                "rtspSource",
                "videoSink",
                "SecretString",
                "Int",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            Just(json!({})),
            Just(json!([])),
        ]
    }

    /// Every path (as object keys / array indices) inside `v`.
    fn paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(here.clone());
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    here.push(Value::String(k.clone()));
                    paths(x, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    here.push(Value::from(i));
                    paths(x, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }

    fn at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
        let mut cur = v;
        for p in path {
            cur = match p {
                Value::String(k) => cur.get_mut(k.as_str())?,
                Value::Number(n) => cur.get_mut(usize::try_from(n.as_u64()?).ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Applies one mutation at the `pick`-th path.
    fn mutate(v: &mut Value, pick: usize, op: u8, new: Value) {
        let mut all = Vec::new();
        paths(v, &mut Vec::new(), &mut all);
        let path = &all[pick % all.len()];
        match op {
            // Drop the key or element.
            0 => {
                if let Some((last, parent)) = path.split_last()
                    && let Some(p) = at(v, parent)
                {
                    match (p, last) {
                        (Value::Object(o), Value::String(k)) => {
                            o.remove(k);
                        }
                        (Value::Array(a), Value::Number(n)) => {
                            if let Some(i) = n.as_u64().and_then(|i| usize::try_from(i).ok())
                                && i < a.len()
                            {
                                a.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Replace the value.
            1 => {
                if let Some(x) = at(v, path) {
                    *x = new;
                }
            }
            // Change the type: wrap in an array or object, or stringify.
            2 => {
                if let Some(x) = at(v, path) {
                    *x = match x.take() {
                        Value::String(s) => json!([s]),
                        Value::Object(o) => Value::Array(o.into_iter().map(|(_, x)| x).collect()),
                        other => Value::String(other.to_string()),
                    };
                }
            }
            // Deep nesting.
            3 => {
                if let Some(x) = at(v, path) {
                    let mut d = new;
                    for _ in 0..80 {
                        d = json!({"a": [d]});
                    }
                    *x = d;
                }
            }
            // Insert a random key into an object / push into an array.
            4 => {
                if let Some(x) = at(v, path) {
                    match x {
                        Value::Object(o) => {
                            o.insert(format!("k{pick}"), new);
                        }
                        Value::Array(a) => a.push(new),
                        _ => {}
                    }
                }
            }
            // Append text (maybe a reference) to a string.
            _ => {
                if let Some(Value::String(s)) = at(v, path) {
                    s.push_str(new.as_str().unwrap_or("${rtspUrl}"));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parse_and_instantiate_never_panic(
            file in any::<prop::sample::Index>(),
            muts in prop::collection::vec((any::<usize>(), 0u8..6, leaf()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let corpus = valid_corpus();
            let (_, text) = file.get(&corpus);
            let mut v: Value = serde_json::from_str(text).expect("corpus JSON");
            for (pick, op, new) in muts {
                mutate(&mut v, pick, op, new);
            }
            if let Ok(t) = parse(&v) {
                let _ = t.to_entity_json();
                let mut vals = required_values(&t);
                let _ = t.instantiate(&ctx(), &vals);
                vals.push(ParameterDefinition { name: "rtspUrl".to_owned(), value: "${rtspUrl}".to_owned() });
                let _ = t.instantiate(&ctx(), &vals);
            }
            // Truncated text is a syntax error or (rarely) still valid, never a panic.
            let s = v.to_string();
            let mut end = cut.index(s.len() + 1);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let _ = parse_str(&s[..end]);
        }

        /// Structure kept, strings garbled: most of these parse, so instantiation and the
        /// typed configurations see odd values (references, URLs, durations, names).
        #[test]
        fn garbled_strings_never_panic(
            file in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<usize>(), any::<bool>(), garble()), 1..6),
            values in prop::collection::vec(garble(), 0..4),
        ) {
            let corpus = valid_corpus();
            let (_, text) = file.get(&corpus);
            let mut v: Value = serde_json::from_str(text).expect("corpus JSON");
            let mut all = Vec::new();
            paths(&v, &mut Vec::new(), &mut all);
            let strings: Vec<_> = all.into_iter().filter(|p| at(&mut v, p).is_some_and(|x| x.is_string())).collect();
            for (pick, append, text) in edits {
                if let Some(Value::String(s)) = at(&mut v, &strings[pick % strings.len()]) {
                    if append { s.push_str(&text) } else { *s = text }
                }
            }
            if let Ok(t) = parse(&v) {
                let _ = t.to_entity_json();
                let mut vals = required_values(&t);
                for (p, x) in t.parameters.iter().zip(values) {
                    vals.retain(|d| d.name != p.name);
                    vals.push(ParameterDefinition { name: p.name.clone(), value: x });
                }
                let _ = t.instantiate(&ctx(), &vals);
            }
        }
    }

    /// Odd text for string values: references, URLs, durations, names, random characters.
    fn garble() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9${}.:/@ _-]{0,16}",
            prop::sample::select(vec![
                "${rtspUrl}",
                "${rtspPassword}",
                "${System.PipelineName}",
                "${System.Runtime.PreciseDateTime}",
                "${System.DateTime}",
                "rtsp://u:p@h:1/x",
                "rtsps://[::1]/",
                "rtsp://",
                "PT30S",
                "PT5M",
                "P3650D",
                "-PT1S",
                "PT0.5S",
                "P1Y",
                "tcp",
                "HTTP",
                "udp",
                "isNot",
                "application",
                "1e309",
                "-1",
                "0",
            ])
            .prop_map(str::to_owned),
        ]
    }
}

/// openva's `videoCreationProperties.maximumSizeMiB` is the archive's cap, in MiB; AVA's
/// `localMediaCacheMaximumSizeMiB` is not.
#[test]
fn video_sink_size_cap_is_its_own_property() {
    let mut v = base();
    v["properties"]["sinks"][0]["videoCreationProperties"] = json!({"maximumSizeMiB": "100"});
    v["properties"]["sinks"][0]["localMediaCacheMaximumSizeMiB"] = json!("2048");
    let inst = parse(&v).unwrap().instantiate(&ctx(), &url()).unwrap();
    let NodeConfig::VideoSink(s) = &inst.nodes[1].config else { panic!("{:?}", inst.nodes[1].config) };
    assert_eq!((s.max_bytes, s.cache_max_bytes), (Some(100 << 20), Some(2048 << 20)));
}

// ---------------------------------------------------------------- event-based recording nodes

fn corpus_topology(name: &str) -> Topology {
    let (_, text) = files("topologies").into_iter().find(|(n, _)| n == name).expect("corpus file");
    parse_str(&text).expect("parses")
}

#[test]
fn corpus_signal_gates_and_file_sinks_are_typed() {
    let t = corpus_topology("evr-motion-file-sink.json");
    let inst = t.instantiate(&ctx(), &required_values(&t)).unwrap();
    let gate = inst.nodes.iter().find_map(|n| match &n.config {
        NodeConfig::SignalGate(g) => Some(*g),
        _ => None,
    });
    assert_eq!(
        gate,
        Some(SignalGateConfig {
            evaluation_window: Duration90k::from_secs(1),
            signal_offset: Duration90k::ZERO,
            minimum_activation: Duration90k::from_secs(10),
            maximum_activation: Duration90k::from_secs(30),
        })
    );
    let sink = inst
        .nodes
        .iter()
        .find_map(|n| match &n.config {
            NodeConfig::FileSink(f) => Some(f.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((sink.base_directory.as_str(), sink.max_bytes), ("/var/media", 512 << 20));
    // Names substituted now, the date per file at its clip's start.
    assert_eq!(sink.file_name_pattern, "sampleFilesFromEVR-motion-T-p-1-filesinkOutput-${System.Runtime.DateTime}");
    let start: jiff::Timestamp = "2021-05-11T05:37:26.5Z".parse().unwrap();
    assert_eq!(sink.file_name(start), "sampleFilesFromEVR-motion-T-p-1-filesinkOutput-20210511T053726Z.mp4");
    // A negative offset, as the hub-message topology writes it.
    let t = corpus_topology("evr-hubMessage-video-sink.json");
    let inst = t.instantiate(&ctx(), &required_values(&t)).unwrap();
    assert!(
        inst.nodes
            .iter()
            .any(|n| matches!(&n.config, NodeConfig::SignalGate(g) if g.signal_offset == Duration90k::from_secs(-5)))
    );
}

#[test]
fn gate_and_file_sink_values_out_of_range_name_the_property() {
    let t = corpus_topology("evr-motion-file-sink.json");
    let body = |path: &str, value: Value| {
        let mut v = t.to_stored_json();
        let (list, key) = path.split_once('.').unwrap();
        let node = v["properties"][list].as_array_mut().unwrap().iter_mut().last().unwrap();
        node[key] = value;
        v
    };
    let cases = [
        (
            "processors.activationEvaluationWindow",
            json!("PT11S"),
            "activationEvaluationWindow 'PT11S' must be from PT0S to PT10S",
        ),
        (
            "processors.activationSignalOffset",
            json!("-PT61S"),
            "activationSignalOffset '-PT61S' must be from -PT60S to PT60S",
        ),
        (
            "processors.minimumActivationTime",
            json!("PT0S"),
            "minimumActivationTime 'PT0S' must be from PT1S to PT3600S",
        ),
        ("processors.maximumActivationTime", json!("PT2H"), "maximumActivationTime"),
        ("processors.maximumActivationTime", json!("soon"), "is not an ISO 8601 duration"),
        ("sinks.baseDirectoryPath", json!("var/media"), "baseDirectoryPath 'var/media' must be an absolute path"),
        ("sinks.baseDirectoryPath", json!("/var/../../etc"), "must not contain '.' or '..'"),
        ("sinks.fileNamePattern", json!("clip-${fileSinkOutputName}"), "must include at least one system variable"),
        ("sinks.fileNamePattern", json!("a/${System.Runtime.DateTime}"), "'/'"),
        ("sinks.maximumSizeMiB", json!("0"), "maximumSizeMiB '0' must be a positive whole number of MiB"),
    ];
    for (path, value, want) in cases {
        let e = parse(&body(path, value.clone())).and_then(|t| t.instantiate(&ctx(), &required_values(&t)).map(|_| ()));
        let e = e.expect_err(&format!("{path} = {value} was accepted")).to_string();
        assert!(e.contains(want), "{path} = {value}: {e}");
    }
}
