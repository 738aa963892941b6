//! Loading the legacy format "1": one `pipeline` with nested `build` pipelines and an
//! optional `assembler`. Pipelines get upstream's implicit names: `tree`, `build`,
//! `build-build`, ... and `assembler`.

use super::*;

pub(super) fn load(root: &Map<String, Value>) -> Result<Manifest, LoadError> {
    let top = JsonPath::root();
    for key in root.keys() {
        if !matches!(key.as_str(), "version" | "pipeline" | "sources") {
            return Err(LoadError::at(&top.key(key), format!("unknown top-level key '{key}'")));
        }
    }
    let doc = Obj { map: root, path: top.clone() };
    let mut m = Manifest::empty(Format::V1);
    let empty = Value::Object(Map::new());
    let pdesc = doc.value("pipeline").unwrap_or(&empty);
    load_pipeline(&mut m, pdesc, top.key("pipeline"), 0)?;

    let p = Obj::new(pdesc, top.key("pipeline"), "the pipeline")?;
    if let Some(asm) = p.value("assembler") {
        load_assembler(&mut m, asm, top.key("pipeline").key("assembler"))?;
    }

    if let Some(sources) = doc.object("sources")? {
        for (name, desc) in sources {
            let spath = top.key("sources").key(name);
            let s = Obj::new(desc, spath.clone(), "a source")?;
            let (kind, key) = match name.as_str() {
                "org.osbuild.files" | "org.osbuild.curl" => ("org.osbuild.curl", "urls"),
                "org.osbuild.ostree" => ("org.osbuild.ostree", "commits"),
                "org.osbuild.librepo" => ("org.osbuild.librepo", "items"),
                other => return Err(LoadError::at(&spath, format!("unknown source type '{other}'"))),
            };
            let items = s
                .value(key)
                .cloned()
                .ok_or_else(|| LoadError::at(&spath, format!("'{key}' is a required property")))?;
            m.sources.push(Source { kind: kind.into(), items, options: desc.clone() });
        }
    }
    Ok(m)
}

fn load_pipeline(m: &mut Manifest, desc: &Value, path: JsonPath, depth: usize) -> Result<usize, LoadError> {
    let p = Obj::new(desc, path.clone(), "a pipeline")?;
    let (build, runner) = match p.value("build") {
        Some(bdesc) => {
            let b = Obj::new(bdesc, path.key("build"), "a build")?;
            let build_id = match b.value("pipeline") {
                Some(inner) => {
                    let idx = load_pipeline(m, inner, path.key("build").key("pipeline"), depth + 1)?;
                    m.pipelines[idx].id().map(str::to_owned)
                }
                None => None,
            };
            (build_id, Some(b.str("runner")?.to_owned()))
        }
        None => (None, None),
    };
    let name = if depth == 0 { "tree".to_owned() } else { vec!["build"; depth].join("-") };
    let mut pipeline = Pipeline { name, build, runner, source_epoch: None, stages: Vec::new(), path: path.clone() };
    for (j, sdesc) in p.array("stages")?.iter().enumerate() {
        let spath = path.key("stages").index(j);
        let s = Obj::new(sdesc, spath.clone(), "a stage")?;
        let kind = s.str("name")?;
        let options = s.value("options").cloned().unwrap_or(Value::Null);
        let mut stage = Stage::new(&pipeline, kind, options, spath.clone());
        add_implicit_inputs(&mut stage, &spath)?;
        stage.seal();
        pipeline.stages.push(stage);
    }
    m.pipelines.push(pipeline);
    Ok(m.pipelines.len() - 1)
}

/// v1 stages name their sources in options; upstream turns those into inputs, which
/// take part in the stage id.
fn add_implicit_inputs(stage: &mut Stage, path: &JsonPath) -> Result<(), LoadError> {
    match stage.kind.as_str() {
        "org.osbuild.rpm" => {
            let mut input = Input::new("org.osbuild.files", ORIGIN_SOURCE, Value::Null);
            let packages = stage.options.get("packages").and_then(Value::as_array).cloned().unwrap_or_default();
            for (n, pkg) in packages.iter().enumerate() {
                match pkg {
                    Value::String(s) => input.add_reference(s.clone(), Value::Null),
                    Value::Object(o) => {
                        let checksum = o.get("checksum").and_then(Value::as_str).ok_or_else(|| {
                            LoadError::at(
                                &path.key("options").key("packages").index(n),
                                "'checksum' is a required property",
                            )
                        })?;
                        let opts = match o.get("check_gpg") {
                            Some(g) if truthy(g) => {
                                serde_json::json!({"metadata": {"rpm.check_gpg": g}})
                            }
                            _ => Value::Null,
                        };
                        input.add_reference(checksum.to_owned(), opts);
                    }
                    _ => {
                        return Err(LoadError::at(
                            &path.key("options").key("packages").index(n),
                            "a package must be a checksum or an object",
                        ))
                    }
                }
            }
            stage.inputs.push(("packages".into(), input));
        }
        "org.osbuild.ostree" => {
            let mut input = Input::new("org.osbuild.ostree", ORIGIN_SOURCE, Value::Null);
            let commit = stage
                .options
                .get("commit")
                .and_then(Value::as_str)
                .ok_or_else(|| LoadError::at(&path.key("options"), "'commit' is a required property"))?
                .to_owned();
            let opts = match stage.options.get("ref") {
                Some(r) if truthy(r) => serde_json::json!({ "ref": r }),
                _ => Value::Null,
            };
            input.add_reference(commit, opts);
            stage.inputs.push(("commits".into(), input));
        }
        _ => {}
    }
    Ok(())
}

fn load_assembler(m: &mut Manifest, desc: &Value, path: JsonPath) -> Result<(), LoadError> {
    let a = Obj::new(desc, path.clone(), "the assembler")?;
    let tree = m.by_name("tree").expect("tree pipeline loaded first");
    let (build, runner, base) = (tree.build.clone(), tree.runner.clone(), tree.id().map(str::to_owned));
    let mut pipeline = Pipeline {
        name: "assembler".into(),
        build,
        runner,
        source_epoch: None,
        stages: Vec::new(),
        path: path.clone(),
    };
    let mut stage = Stage::new(&pipeline, a.str("name")?, a.value("options").cloned().unwrap_or(Value::Null), path);
    let mut input = Input::new("org.osbuild.tree", ORIGIN_PIPELINE, Value::Null);
    input.add_reference(base.unwrap_or_else(|| "null".into()), Value::Null);
    stage.inputs.push(("tree".into(), input));
    stage.assembler = true;
    stage.seal();
    pipeline.stages.push(stage);
    m.pipelines.push(pipeline);
    Ok(())
}
