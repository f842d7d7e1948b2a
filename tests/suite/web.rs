//! The browser page (web/): built with scripts/build-web.sh, served on 127.0.0.1, run in
//! headless Chromium on WebGPU (SwiftShader, the flags below) on the first [`GPU_POOL`] pool
//! examples and again on the page's CPU fallback (Burn's CPU backend in wasm) on the whole
//! pool, and each selection compared with `gradsift select --method less` on the same embedded
//! model and data (computed natively on the CPU backend: device independence, across a
//! browser). Leaves a screenshot of the finished page in target/web-page.png. Without
//! Chromium, the wasm32 target or wasm-bindgen-cli at the lockfile's version the test skips
//! visibly, except under CI=true (docs/development.md, Set-up, says how to install them; the test installs nothing).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::tmp;

/// Pool examples the WebGPU run scores. SwiftShader runs WebGPU on the CPU, so every batch of
/// the 400 took seconds and the whole run 5 to 10 minutes of CI (96 examples: 271 s); the first
/// batch, which compiles and tunes the kernels, costs the same however many follow, six batches
/// take every path the rest would, and the CPU fallback still runs the whole pool.
const GPU_POOL: usize = 48;

/// Longest wait for the page's result (build excluded).
const PAGE_LIMIT: Duration = Duration::from_secs(20 * 60);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// What is missing to run the page here, if anything.
fn missing_tools() -> Option<String> {
    let runs = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    if runs("chromium", &["--version"]).is_none() {
        return Some("no `chromium` (docs/development.md, Set-up)".into());
    }
    // The toolchain's own record of its targets, as scripts/build-web.sh checks it.
    let sysroot = runs("rustc", &["--print", "sysroot"]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if !sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib/wasm32-unknown-unknown").is_dir()) {
        return Some("no wasm32-unknown-unknown target (docs/development.md, Set-up)".into());
    }
    // The page's glue must come from the wasm-bindgen the crate is locked to.
    let lock = include_str!("../../Cargo.lock");
    let version = lock.split("[[package]]").find_map(|p| {
        let mut lines = p.lines().map(str::trim).filter(|l| !l.is_empty());
        (lines.next() == Some("name = \"wasm-bindgen\"")).then(|| lines.next()).flatten()
    });
    let version = version.expect("wasm-bindgen is in Cargo.lock");
    let want = format!("wasm-bindgen {}", version.trim_start_matches("version = ").trim_matches('"'));
    let found = runs("wasm-bindgen", &["--version"]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if found.as_deref() != Some(want.as_str()) {
        return Some(format!("{want} is needed, found {found:?} (docs/development.md, Set-up)"));
    }
    None
}

/// A line on stderr that the test harness does not capture: the page's build and runs are most
/// of CI's time, and its log should show how much.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The page's POSTed result, and whether it has arrived (the /hold request waits on it).
type Posted = Arc<(Mutex<Option<String>>, Condvar)>;

/// Serves `root` and takes the page's POST /result, a connection per thread.
fn serve(root: PathBuf, posted: Posted) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, posted) = (root.clone(), posted.clone());
            std::thread::spawn(move || {
                let _ = answer(stream, &root, &posted);
            });
        }
    });
    port
}

fn answer(stream: TcpStream, root: &Path, posted: &Posted) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/");
    let mut out = stream;
    let reply = |out: &mut TcpStream, status: &str, kind: &str, body: &[u8]| {
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        out.write_all(body)
    };
    match (method, path) {
        ("POST", "/result") => {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            let (lock, ready) = &**posted;
            *lock.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
            ready.notify_all();
            reply(&mut out, "200 OK", "text/plain", b"ok")
        }
        ("GET", "/hold") => {
            // Answered once the result is in: until then the page has not finished loading, so
            // Chromium's --screenshot waits for the finished page.
            let (lock, ready) = &**posted;
            let _done = ready.wait_while(lock.lock().unwrap(), |r| r.is_none()).unwrap();
            reply(&mut out, "204 No Content", "text/plain", b"")
        }
        ("GET", p) => {
            let rel = if p == "/" { "index.html" } else { p.trim_start_matches('/') };
            let file = root.join(rel);
            if rel.contains("..") || !file.is_file() {
                return reply(&mut out, "404 Not Found", "text/plain", b"not found");
            }
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                Some("wasm") => "application/wasm",
                _ => "application/octet-stream",
            };
            reply(&mut out, "200 OK", kind, &std::fs::read(file)?)
        }
        _ => reply(&mut out, "405 Method Not Allowed", "text/plain", b""),
    }
}

#[test]
fn page_selection_equals_the_cli() {
    if let Some(why) = missing_tools() {
        assert!(!ci(), "CI=true but the browser test cannot run: {why}");
        eprintln!("SKIPPED (browser page): {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Instant::now();
    let status = Command::new("bash").arg(root.join("scripts/build-web.sh")).current_dir(root).status().unwrap();
    assert!(status.success(), "scripts/build-web.sh failed");
    progress(&format!("web: page built in {:.0} s", built.elapsed().as_secs_f64()));

    let dir_tmp = tmp("web", "cli");
    let dir = dir_tmp.path();
    // The CLI's selection on the whole embedded pool, and on its first GPU_POOL lines with the
    // embedded target (the page's budget of 20 either way).
    let whole = cli_selection(&dir.join("whole"), &[]);
    let part = dir.join(format!("pool-{GPU_POOL}.jsonl"));
    let lines: Vec<&str> = include_str!("../../assets/demo/pool.jsonl").lines().take(GPU_POOL).collect();
    std::fs::write(&part, lines.join("\n") + "\n").unwrap();
    let target = root.join("assets/demo/target.jsonl");
    let first = cli_selection(
        &dir.join("part"),
        &[
            "--pool".as_ref(),
            part.as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
            "--count".as_ref(),
            "20".as_ref(),
        ],
    );

    let shot = root.join("target/web-page.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let gpu_query = format!("&pool={GPU_POOL}");
    for (query, screenshot, want) in [(gpu_query.as_str(), Some(shot.as_path()), &first), ("&cpu=1", None, &whole)] {
        let ran = Instant::now();
        let report = run_page(root, dir, query, screenshot);
        assert!(report.get("error").is_none(), "the page{query} failed: {}", report["error"]);
        let device = report["device"].as_str().unwrap_or_default();
        progress(&format!(
            "web: the page{query} selected in {:.1} s on {device} (scorer {}), {:.0} s in Chromium",
            report["seconds"].as_f64().unwrap_or(f64::NAN),
            report["scorer"],
            ran.elapsed().as_secs_f64()
        ));
        let (want_device, want_scorer) =
            if screenshot.is_some() { ("wgpu:", "wgsl (f32)") } else { ("cpu", "cpu (f64)") };
        assert!(device.starts_with(want_device), "the page{query} ran on {device}");
        assert_eq!(report["scorer"], want_scorer);
        let got: Vec<usize> = serde_json::from_value(report["selected"].clone()).unwrap();
        assert_eq!(&got, want, "the page{query} selected otherwise than gradsift select");
    }
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
}

/// `gradsift select --method less` on the CPU backend with `args` added: the pool indices it
/// selects, in rank order.
fn cli_selection(out: &Path, args: &[&std::ffi::OsStr]) -> Vec<usize> {
    let cli = Command::new(env!("CARGO_BIN_EXE_gradsift"))
        .args(["select", "--method", "less", "--device", "cpu", "--quiet", "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(cli.status.success(), "gradsift select: {}", String::from_utf8_lossy(&cli.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap()
}

/// Serves the page, opens it in headless Chromium on SwiftShader's WebGPU with `query` added to
/// its URL, and returns the run's report; with `screenshot`, Chromium captures the finished page
/// there.
fn run_page(root: &Path, dir: &Path, query: &str, screenshot: Option<&Path>) -> serde_json::Value {
    let posted: Posted = Arc::new((Mutex::new(None), Condvar::new()));
    let port = serve(root.join("web/dist"), posted.clone());
    let mut chromium = Command::new("chromium");
    chromium
        .args([
            "--headless=new",
            "--no-sandbox",
            "--enable-unsafe-webgpu",
            "--enable-features=Vulkan",
            "--use-vulkan=swiftshader",
            "--use-webgpu-adapter=swiftshader",
            "--window-size=1280,1400",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join(format!("profile{}", query.len())).display()));
    // With a screenshot to take, the page holds its load event until its result is in.
    let hold = match screenshot {
        Some(path) => {
            chromium.arg(format!("--screenshot={}", path.display()));
            "&hold=1"
        }
        None => "",
    };
    let mut browser = chromium
        .arg(format!("http://127.0.0.1:{port}/index.html?auto=1&report=1{hold}{query}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let result = {
        let (lock, ready) = &*posted;
        let (got, timeout) = ready.wait_timeout_while(lock.lock().unwrap(), PAGE_LIMIT, |r| r.is_none()).unwrap();
        if timeout.timed_out() {
            let _ = browser.kill();
            let mut err = String::new();
            let _ = browser.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("the page{query} posted no result within {PAGE_LIMIT:?}; chromium said:\n{err}");
        }
        got.clone().unwrap()
    };
    if let Some(path) = screenshot {
        // The screenshot follows the result (the page's /hold request returns then).
        let deadline = Instant::now() + Duration::from_secs(120);
        while browser.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(path.is_file(), "no screenshot at {}", path.display());
    }
    let _ = browser.kill();
    let _ = browser.wait();
    serde_json::from_str(&result).unwrap()
}
