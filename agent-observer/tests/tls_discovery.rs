//! TLS probe-point discovery against real binaries: system libraries, Node, a Bun-compiled
//! program, Claude Code's native binary, GitHub Copilot CLI, Codex, and OpenSSL statically
//! linked into a C program and a shared object (built here with `cc`, then stripped).
//!
//! Ground truth is independent of the code under test: `nm` symbol values mapped to file
//! offsets through the program headers, and for the stripped builds the unstripped twin's
//! `.symtab`. For Bun and Claude Code (stripped, no symbols at all) the expected offsets were
//! confirmed by attaching kernel uprobes at them (tracefs `uprobe_events`, by file offset) and
//! reading the plaintext HTTP request from `SSL_write`'s buffer during a request to a local
//! TLS server; they are checked for those exact builds (by build-id).
//!
//! Nothing is skipped: a missing file or tool fails with what to run. The npm packages come
//! from `cargo xtask setup --tests` into `$AGENT_OBSERVER_TEST_TOOLS/npm` (default
//! `<workspace>/target/test-tools`).
//!
//! The tests sit in a `probes::tls` module so `cargo test -p agent-observer probes::tls` runs
//! them together with the unit tests.

mod probes {
    mod tls {
        use std::{
            collections::HashMap,
            path::{Path, PathBuf},
            process::Command,
            time::{Duration, Instant},
        };

        use agent_observer::probes::tls::{
            Convention, Direction, Discovery, DiscoveryCache, Method, ProbePoint, TlsLibrary, analyze,
        };
        use object::read::elf::{ElfFile64, ProgramHeader};

        const SETUP: &str = "run `cargo xtask setup --tests`";

        /// The tests that read hundreds of megabytes take turns, so the timed one is measured
        /// alone on a small machine.
        static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

        fn heavy() -> std::sync::MutexGuard<'static, ()> {
            HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        fn tools() -> PathBuf {
            match std::env::var_os("AGENT_OBSERVER_TEST_TOOLS") {
                Some(dir) => PathBuf::from(dir),
                None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools"),
            }
        }

        /// The first of `candidates` (paths under the npm `node_modules`) that exists.
        fn npm(candidates: &[&str]) -> PathBuf {
            let root = tools().join("npm/node_modules");
            candidates
                .iter()
                .map(|c| root.join(c))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("none of {candidates:?} exists under {}: {SETUP}", root.display()))
        }

        fn system(path: &str) -> PathBuf {
            let p = PathBuf::from(path);
            assert!(p.is_file(), "{path} is missing: this machine image (Debian 12) is expected to ship it; {SETUP}");
            p
        }

        fn run(cmd: &mut Command) -> String {
            let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {SETUP}"));
            assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// The executable PT_LOAD segments: (vaddr, file offset, file size).
        fn code_segments(path: &Path) -> Vec<(u64, u64, u64)> {
            let data = std::fs::read(path).unwrap();
            let elf = ElfFile64::<object::Endianness>::parse(&*data).unwrap();
            let endian = elf.endian();
            elf.elf_program_headers()
                .iter()
                .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD && ph.p_flags(endian) & object::elf::PF_X != 0)
                .map(|ph| (ph.p_vaddr(endian), ph.p_offset(endian), ph.p_filesz(endian)))
                .collect()
        }

        /// `nm` (or `nm -D`) text symbols as name → file offset.
        fn nm_offsets(path: &Path, dynamic: bool) -> HashMap<String, u64> {
            let mut cmd = Command::new("nm");
            cmd.arg("--defined-only");
            if dynamic {
                cmd.arg("-D");
            }
            let out = run(cmd.arg(path));
            let segments = code_segments(path);
            let code_offset = |vaddr: u64| {
                segments
                    .iter()
                    .find(|(va, _, size)| vaddr >= *va && vaddr < va + size)
                    .map(|(va, off, _)| vaddr - va + off)
            };
            let mut map = HashMap::new();
            for line in out.lines() {
                let mut f = line.split_whitespace();
                let (Some(value), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else { continue };
                if !matches!(kind, "T" | "t" | "W") {
                    continue;
                }
                let name = name.split('@').next().unwrap_or(name).to_string();
                let vaddr = u64::from_str_radix(value, 16).unwrap();
                if let Some(offset) = code_offset(vaddr) {
                    map.entry(name).or_insert(offset);
                }
            }
            map
        }

        fn points(d: &Discovery) -> Vec<(&str, u64)> {
            d.points.iter().map(|p| (p.function.as_str(), p.file_offset)).collect()
        }

        fn point<'a>(d: &'a Discovery, name: &str) -> &'a ProbePoint {
            d.points.iter().find(|p| p.function == name).unwrap_or_else(|| panic!("no {name} in {d:#?}"))
        }

        fn assert_symbol_points(path: &Path, d: &Discovery, names: &[&str], dynamic: bool) {
            let truth = nm_offsets(path, dynamic);
            assert_eq!(d.points.iter().map(|p| p.function.as_str()).collect::<Vec<_>>(), names, "{d:#?}");
            for p in &d.points {
                assert_eq!(p.method, Method::Symbol);
                assert_eq!(Some(&p.file_offset), truth.get(&p.function), "{} in {}", p.function, path.display());
            }
        }

        const OPENSSL_POINTS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

        fn assert_openssl_conventions(d: &Discovery) {
            assert_eq!(point(d, "SSL_write").convention, Convention::ReturnsBytes);
            assert_eq!(point(d, "SSL_write").direction, Direction::Send);
            assert_eq!(point(d, "SSL_read").convention, Convention::ReturnsBytes);
            assert_eq!(point(d, "SSL_read").direction, Direction::Recv);
            assert_eq!(point(d, "SSL_write_ex").convention, Convention::OutParam { arg: 3 });
            assert_eq!(point(d, "SSL_read_ex").convention, Convention::OutParam { arg: 3 });
            assert_eq!(point(d, "SSL_read_ex").direction, Direction::Recv);
        }

        #[test]
        fn node_exports_its_static_openssl() {
            let _turn = heavy();
            let path = system("/usr/bin/node");
            let d = analyze(&path).unwrap();
            assert_eq!(d.library, Some(TlsLibrary::OpenSsl));
            assert!(d.version.as_deref().is_some_and(|v| v.starts_with("OpenSSL 3.")), "{:?}", d.version);
            assert_symbol_points(&path, &d, &OPENSSL_POINTS, true);
            assert_openssl_conventions(&d);
            assert!(d.build_id.is_some());
        }

        #[test]
        fn system_libssl() {
            let path = system("/usr/lib/x86_64-linux-gnu/libssl.so.3");
            let d = analyze(&path).unwrap();
            assert_eq!(d.library, Some(TlsLibrary::OpenSsl));
            assert_symbol_points(&path, &d, &OPENSSL_POINTS, true);
            assert_openssl_conventions(&d);
        }

        #[test]
        fn system_gnutls() {
            let path = system("/usr/lib/x86_64-linux-gnu/libgnutls.so.30");
            let d = analyze(&path).unwrap();
            assert_eq!(d.library, Some(TlsLibrary::GnuTls));
            assert_symbol_points(&path, &d, &["gnutls_record_send", "gnutls_record_recv"], true);
            assert_eq!(point(&d, "gnutls_record_send").direction, Direction::Send);
            assert_eq!(point(&d, "gnutls_record_recv").convention, Convention::ReturnsBytes);
        }

        #[test]
        fn system_nspr() {
            let path = system("/usr/lib/x86_64-linux-gnu/libnspr4.so");
            let d = analyze(&path).unwrap();
            assert_eq!(d.library, Some(TlsLibrary::Nss));
            assert_symbol_points(&path, &d, &["PR_Write", "PR_Send", "PR_Read", "PR_Recv"], true);
            assert!(d.notes.iter().any(|n| n.contains("not only TLS")), "{:?}", d.notes);
        }

        #[test]
        fn programs_that_import_tls_have_no_points() {
            // curl's TLS is in libssl.so.3 (or libgnutls), not in the executable.
            let d = analyze(&system("/bin/ls")).unwrap();
            assert_eq!(d.library, None);
            assert!(d.points.is_empty());
        }

        /// A small HTTPS client: enough to pull `SSL_write`/`SSL_read` and their internals out
        /// of `libssl.a`.
        const CLIENT_C: &str = r#"
#include <netdb.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int tls_get(const char *host, const char *port) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0) return 1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) return 1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) return 1;
    const char *req = "GET / HTTP/1.0\r\nHost: fixture\r\n\r\n";
    SSL_write(ssl, req, (int)strlen(req));
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    freeaddrinfo(ai);
    return 0;
}

#ifndef FIXTURE_LIB
int main(int argc, char **argv) { return argc == 3 ? tls_get(argv[1], argv[2]) : 0; }
#endif
"#;

        /// Builds the client against Debian's static OpenSSL, as an executable and as a shared
        /// object whose static-library symbols are hidden (as in a Rust cdylib), plus stripped
        /// copies of both.
        fn build_static_openssl(dir: &Path) -> [(PathBuf, PathBuf); 2] {
            let lib = Path::new("/usr/lib/x86_64-linux-gnu");
            for a in ["libssl.a", "libcrypto.a"] {
                assert!(lib.join(a).is_file(), "{} is missing (package libssl-dev): {SETUP}", lib.join(a).display());
            }
            let src = dir.join("client.c");
            std::fs::write(&src, CLIENT_C).unwrap();
            let statics = [lib.join("libssl.a"), lib.join("libcrypto.a")];
            let exe = dir.join("client");
            run(Command::new("cc").args(["-O2", "-o"]).arg(&exe).arg(&src).args(&statics).args(["-lpthread", "-ldl"]));
            let so = dir.join("libclient.so");
            run(Command::new("cc")
                .args(["-O2", "-shared", "-fPIC", "-DFIXTURE_LIB", "-Wl,--exclude-libs,ALL", "-o"])
                .arg(&so)
                .arg(&src)
                .args(&statics)
                .args(["-lpthread", "-ldl"]));
            [exe, so].map(|built| {
                let stripped = built.with_extension("stripped");
                std::fs::copy(&built, &stripped).unwrap();
                run(Command::new("strip").arg("--strip-all").arg(&stripped));
                (built, stripped)
            })
        }

        #[test]
        fn stripped_static_openssl_in_an_executable_and_a_shared_object() {
            let _turn = heavy();
            let dir = tempfile::tempdir().unwrap();
            for (unstripped, stripped) in build_static_openssl(dir.path()) {
                let truth = nm_offsets(&unstripped, false);
                // Unstripped: the public functions from .symtab.
                let d = analyze(&unstripped).unwrap();
                assert_eq!(d.library, Some(TlsLibrary::OpenSsl));
                assert_symbol_points(&unstripped, &d, &OPENSSL_POINTS, false);
                // Stripped: the internals, from their __func__ strings.
                assert!(!nm_offsets(&stripped, true).contains_key("SSL_write"), "exports must be hidden");
                let d = analyze(&stripped).unwrap();
                assert_eq!(d.library, Some(TlsLibrary::OpenSsl), "{d:#?}");
                assert_eq!(
                    points(&d),
                    vec![
                        ("ssl_write_internal", truth["ssl_write_internal"]),
                        ("ssl_read_internal", truth["ssl_read_internal"])
                    ],
                    "{}: {d:#?}",
                    stripped.display()
                );
                // Debian 12's libssl.a is OpenSSL 3.0: `written` is argument 3.
                assert_eq!(point(&d, "ssl_write_internal").convention, Convention::OutParam { arg: 3 });
                assert_eq!(point(&d, "ssl_write_internal").direction, Direction::Send);
                assert_eq!(point(&d, "ssl_read_internal").convention, Convention::OutParam { arg: 3 });
                assert_eq!(point(&d, "ssl_read_internal").direction, Direction::Recv);
                assert!(d.points.iter().all(|p| p.method == Method::OpenSslFuncStrings));
            }
        }

        /// A miniature of BoringSSL's `ssl_lib.cc` error sites, in the source order that matters
        /// (`ssl_read_impl`, `SSL_read`, `SSL_write`), built by GCC: shrink-wrapped prologues,
        /// tail calls and unaligned entries that clang's Bun builds do not have.
        const MINI_BORINGSSL_C: &str = r#"
__attribute__((noinline)) void ERR_put_error(int a, int b, int c, const char *d, unsigned e) { __asm__ volatile("" ::"r"(a), "r"(b), "r"(c), "r"(d), "r"(e)); }
#define PUT(r) ERR_put_error(16, 0, r, "../../vendor/boringssl/ssl/ssl_lib.cc", __LINE__)
__attribute__((noinline)) static int ssl_read_impl(int *s) { if (!s) { PUT(226); return -1; } if (*s == 3) { PUT(215); return -1; } return *s; }
__attribute__((noinline)) int SSL_read(int *s, void *b, int n) { if (n == 7) { PUT(66); return -1; } return ssl_read_impl(s); }
__attribute__((noinline)) int SSL_write(int *s, const void *b, int n) { if (!s) { PUT(66); return -1; } if (*s == 0) { PUT(226); return -1; } if (*s == 4) { PUT(215); return -1; } return n; }
__attribute__((noinline)) int SSL_shutdown(int *s) { if (!s) { PUT(226); return -1; } return ssl_read_impl(s) > 0 ? -1 : 0; }
void _start(void) { int x = 1; SSL_write(&x, 0, 1); SSL_read(&x, 0, 1); SSL_shutdown(&x); for (;;); }
"#;

        /// A miniature of OpenSSL's `ssl_write_internal`/`ssl_read_internal` error sites; with
        /// `-DFLAGS`, the >= 3.2 form whose flags check raises SSL_R_UNSUPPORTED_WRITE_FLAG.
        const MINI_OPENSSL_C: &str = r#"
__attribute__((noinline)) void ERR_set_debug(const char *f, int l, const char *fn) { __asm__ volatile("" ::"r"(f), "r"(l), "r"(fn)); }
__attribute__((noinline)) void ERR_set_error(int lib, int reason, const char *fmt) { __asm__ volatile("" ::"r"(lib), "r"(reason), "r"(fmt)); }
#define RAISE(r) (ERR_set_debug("../ssl/ssl_lib.c", __LINE__, __func__), ERR_set_error(20, r, 0))
#ifdef FLAGS
__attribute__((noinline)) int ssl_write_internal(int *s, const void *b, unsigned long n, unsigned long flags, unsigned long *w) { if (!s) { RAISE(276); return -1; } if (flags) { RAISE(412); return -1; } *w = n; return 1; }
int SSL_write(int *s, const void *b, int n) { unsigned long w; int r = ssl_write_internal(s, b, n, 0, &w); return r > 0 ? (int)w : r; }
#else
__attribute__((noinline)) int ssl_write_internal(int *s, const void *b, unsigned long n, unsigned long *w) { if (!s) { RAISE(276); return -1; } *w = n; return 1; }
int SSL_write(int *s, const void *b, int n) { unsigned long w; int r = ssl_write_internal(s, b, n, &w); return r > 0 ? (int)w : r; }
#endif
__attribute__((noinline)) int ssl_read_internal(int *s, void *b, unsigned long n, unsigned long *r) { if (!s) { RAISE(276); return -1; } *r = n; return 1; }
int SSL_read(int *s, void *b, int n) { unsigned long w; int r = ssl_read_internal(s, b, n, &w); return r > 0 ? (int)w : r; }
"#;

        fn cc(dir: &Path, name: &str, source: &str, flags: &[&str]) -> (PathBuf, PathBuf) {
            let src = dir.join(format!("{name}.c"));
            std::fs::write(&src, source).unwrap();
            let out = dir.join(name);
            run(Command::new("cc").args(["-Os", "-nostdlib"]).args(flags).arg("-o").arg(&out).arg(&src));
            let stripped = dir.join(format!("{name}.stripped"));
            run(Command::new("strip").arg("--strip-all").arg("-o").arg(&stripped).arg(&out));
            (out, stripped)
        }

        #[test]
        fn gcc_built_miniatures_of_both_heuristics() {
            let dir = tempfile::tempdir().unwrap();
            for (name, flags) in [
                ("boring-nopie", &["-static", "-no-pie", "-fno-pie", "-fno-omit-frame-pointer"][..]),
                ("boring-pie", &["-static-pie", "-fPIE", "-fno-omit-frame-pointer"][..]),
            ] {
                let (unstripped, stripped) = cc(dir.path(), name, MINI_BORINGSSL_C, flags);
                let truth = nm_offsets(&unstripped, false);
                let d = analyze(&stripped).unwrap();
                assert_eq!(d.library, Some(TlsLibrary::BoringSsl), "{name}: {d:#?}");
                assert_eq!(
                    points(&d),
                    vec![("SSL_write", truth["SSL_write"]), ("SSL_read", truth["SSL_read"])],
                    "{name}: {d:#?}"
                );
            }
            for (name, flags, arg) in [("openssl32", &["-DFLAGS"][..], 4u8), ("openssl30", &[][..], 3)] {
                let flags: Vec<&str> =
                    ["-shared", "-fPIC", "-fvisibility=hidden"].iter().chain(flags).copied().collect();
                let (unstripped, stripped) = cc(dir.path(), name, MINI_OPENSSL_C, &flags);
                let truth = nm_offsets(&unstripped, false);
                let d = analyze(&stripped).unwrap();
                assert_eq!(d.library, Some(TlsLibrary::OpenSsl), "{name}: {d:#?}");
                assert_eq!(
                    points(&d),
                    vec![
                        ("ssl_write_internal", truth["ssl_write_internal"]),
                        ("ssl_read_internal", truth["ssl_read_internal"])
                    ],
                    "{name}: {d:#?}"
                );
                assert_eq!(point(&d, "ssl_write_internal").convention, Convention::OutParam { arg }, "{name}");
            }
        }

        /// Offsets confirmed with uprobes for specific builds, by build-id.
        const CONFIRMED: &[(&str, u64, u64)] = &[
            // bun 1.4.5 (npm `bun@1.4.5`) and everything it compiles.
            ("b5188e4f53b53f3a346614bd78ba53f2ff234402", 0x23ffc30, 0x237e500),
            // Claude Code 2.1.197 native binary (Bun 1.4.0 runtime).
            ("2ba9a4dca997a53147167d7f967fdc840325054c", 0x320d3a0, 0x320d010),
        ];

        fn assert_boringssl(d: &Discovery, what: &str) {
            assert_eq!(d.library, Some(TlsLibrary::BoringSsl), "{what}: {d:#?}");
            assert_eq!(d.points.len(), 2, "{what}: {d:#?}");
            let (w, r) = (point(d, "SSL_write"), point(d, "SSL_read"));
            assert_eq!(
                (w.direction, w.convention, w.method),
                (Direction::Send, Convention::ReturnsBytes, Method::BoringSslErrorSites)
            );
            assert_eq!(
                (r.direction, r.convention, r.method),
                (Direction::Recv, Convention::ReturnsBytes, Method::BoringSslErrorSites)
            );
            let id = d.build_id.as_deref().map(hex::encode).unwrap_or_default();
            if let Some((_, write, read)) = CONFIRMED.iter().find(|(b, _, _)| *b == id) {
                assert_eq!(
                    (w.file_offset, r.file_offset),
                    (*write, *read),
                    "{what}: offsets differ from the uprobe-confirmed ones"
                );
            }
        }

        fn bun() -> PathBuf {
            npm(&[
                "bun/bin/bun.exe",
                "bun/bin/bun",
                "@oven/bun-linux-x64/bin/bun",
                "@oven/bun-linux-x64-baseline/bin/bun",
            ])
        }

        #[test]
        fn bun_runtime_and_a_stripped_compiled_program() {
            let _turn = heavy();
            let bun = bun();
            let runtime = analyze(&bun).unwrap();
            assert_boringssl(&runtime, "bun runtime");

            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("app.js");
            std::fs::write(&script, "const r = await fetch(\"https://127.0.0.1:9/\"); console.log(r.status);\n")
                .unwrap();
            let app = dir.path().join("app");
            run(Command::new(&bun)
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .args(["build", "--compile", "--outfile"])
                .arg(&app)
                .arg(&script));
            run(Command::new("strip").arg("--strip-all").arg(&app));
            let started = Instant::now();
            let d = analyze(&app).unwrap();
            eprintln!("bun-compiled stripped program: analysed in {:?}", started.elapsed());
            assert_boringssl(&d, "bun-compiled program");
            // Compiling embeds the script; the runtime's code stays where it was.
            assert_eq!(d.points, runtime.points);
        }

        fn budget() -> Duration {
            if cfg!(debug_assertions) { Duration::from_secs(5) } else { Duration::from_secs(1) }
        }

        #[test]
        fn claude_code_native_binary() {
            let _turn = heavy();
            let path = npm(&["@anthropic-ai/claude-code-linux-x64/claude", "@anthropic-ai/claude-code/bin/claude.exe"]);
            assert!(std::fs::metadata(&path).unwrap().len() > 100 << 20, "{} is not the native binary", path.display());
            // Warm the page cache so the measurement is of the analysis, not the disk.
            let _ = std::fs::read(&path).unwrap().len();
            let started = Instant::now();
            let d = analyze(&path).unwrap();
            let took = started.elapsed();
            eprintln!("Claude Code native binary: analysed in {took:?}");
            assert_boringssl(&d, "Claude Code");
            assert!(took < budget(), "analysis took {took:?}, budget {:?}", budget());
        }

        #[test]
        fn copilot_cli() {
            let _turn = heavy();
            // Copilot CLI 1.0.x ships a Node single-executable application: Node's OpenSSL,
            // exported. Its native addons (keytar, node-pty) carry no TLS.
            let path = npm(&["@github/copilot-linux-x64/copilot"]);
            let d = analyze(&path).unwrap();
            assert_eq!(d.library, Some(TlsLibrary::OpenSsl), "{d:#?}");
            assert!(d.version.as_deref().is_some_and(|v| v.starts_with("OpenSSL 3.")), "{:?}", d.version);
            assert_symbol_points(&path, &d, &OPENSSL_POINTS, true);
            assert_openssl_conventions(&d);

            let root = tools().join("npm/node_modules/@github");
            let mut addons = Vec::new();
            let mut stack = vec![root];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                    let p = entry.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "node") && p.to_string_lossy().contains("linux-x64") {
                        addons.push(p);
                    }
                }
            }
            assert!(!addons.is_empty(), "no linux-x64 native addons under @github: {SETUP}");
            for addon in addons {
                let d = analyze(&addon).unwrap();
                assert_eq!(d.library, None, "{}: {d:#?}", addon.display());
            }
        }

        #[test]
        fn codex_cli() {
            let _turn = heavy();
            // Codex links rustls (aws-lc-rs and ring), which carries its API traffic (checked
            // with uprobes: no ssl_write_internal call during a request), and a vendored
            // OpenSSL 3.x (native-tls). rustls is reported, with no points; the OpenSSL
            // internals are named in the notes.
            let path = npm(&[
                "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
                "@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex",
                "@openai/codex/vendor/x86_64-unknown-linux-musl/bin/codex",
            ]);
            let started = Instant::now();
            let d = analyze(&path).unwrap();
            eprintln!("Codex: analysed in {:?}", started.elapsed());
            assert_eq!(d.library, Some(TlsLibrary::Rustls), "{d:#?}");
            assert!(d.version.as_deref().is_some_and(|v| v.starts_with("rustls-0.")), "{:?}", d.version);
            assert!(d.points.is_empty(), "{d:#?}");
            assert!(d.notes.iter().any(|n| n.contains("ssl_write_internal at file offset")), "{:?}", d.notes);
            assert!(
                d.notes.iter().any(|n| n.contains("arg 4")),
                "OpenSSL 3.6's ssl_write_internal takes flags: {:?}",
                d.notes
            );
        }

        #[test]
        fn cache_analyses_each_library_once() {
            let libssl = system("/usr/lib/x86_64-linux-gnu/libssl.so.3");
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("libssl.so.3");
            std::fs::copy(&libssl, &copy).unwrap();
            let mut cache = DiscoveryCache::new();
            let a = cache.analyze(&libssl).unwrap();
            let b = cache.analyze(&libssl).unwrap();
            let c = cache.analyze(&copy).unwrap();
            assert!(std::sync::Arc::ptr_eq(&a, &b));
            assert!(std::sync::Arc::ptr_eq(&a, &c), "same build-id and size: one analysis");
            assert_eq!(cache.len(), 1);
            cache.analyze(&system("/usr/lib/x86_64-linux-gnu/libgnutls.so.30")).unwrap();
            assert_eq!(cache.len(), 2);
        }
    }
}
