#[test]
fn diag() {
    let paths = std::env::var("DIAG").unwrap_or_default();
    for p in paths.split(':').filter(|p| !p.is_empty()) {
        let t = std::time::Instant::now();
        let r = agent_observer::probes::tls::analyze(std::path::Path::new(p));
        let el = t.elapsed();
        match r {
            Ok(d) => {
                println!("== {p} ({el:?}) library={:?} version={:?} build_id={}", d.library, d.version, d.build_id.as_deref().map(hex::encode).unwrap_or_default());
                for pt in &d.points { println!("   {} {:#x} {:?} {:?} {:?}", pt.function, pt.file_offset, pt.direction, pt.convention, pt.method); }
                for n in &d.notes { println!("   note: {n}"); }
            }
            Err(e) => println!("== {p} ({el:?}) ERROR {e}"),
        }
    }
}
