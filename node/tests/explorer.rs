//! The explorer page at `/`, in a real headless Chromium driven through chromedriver
//! (WebDriver), against a live 4-validator testnet: it loads with no console errors, the
//! height advances on screen, a transfer sent during the test shows on its transaction and
//! account pages and through the search box, a validator stopped during the test shows
//! missed blocks and then its downtime slash, and the page fits a phone's width. Screenshots are kept under
//! `target/explorer/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test fails and says so; `BASALT_SKIP_BROWSER=1` skips it on purpose.

mod common;

use basalt_types::PrivateKey;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// A chromedriver process and one headless Chromium session in it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

impl Browser {
    fn start(port: u16) -> Browser {
        let driver_bin = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("chromedriver not found: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver), or set BASALT_SKIP_BROWSER=1");
        let chromium = find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"])
            .expect("chromium not found: apt-get install chromium chromium-driver");
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        wait_for("chromedriver to listen", MINUTE, || {
            agent.get(&format!("{base}/status")).call().is_ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,2200", "--no-first-run"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r: Value = agent
            .post(&format!("{base}/session"))
            .send_json(caps)
            .expect("new WebDriver session")
            .into_json()
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let r: Value = match self.agent.post(&self.url(path)).send_json(body) {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(_, r)) => r.into_json().unwrap(),
            Err(e) => panic!("WebDriver {path}: {e}"),
        };
        r["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// Runs `body` (a function body: `return …`) in the page.
    fn eval(&self, body: &str) -> Value {
        self.post("/execute/sync", json!({"script": body, "args": []}))
    }

    /// Polls `body` in the page until `ok` accepts its value.
    fn wait(&self, what: &str, within: Duration, body: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + within;
        loop {
            let v = self.eval(body);
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "{what}: the page shows {v} ({})",
                self.eval("return document.getElementById('view').innerText;")
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Opens `url`, and reloads it every few seconds until `body` satisfies `ok` (for data the node
    /// serves a moment after it exists, such as an indexed transaction).
    fn open_until(&self, url: &str, what: &str, body: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + MINUTE;
        self.goto(url);
        loop {
            let tried = Instant::now() + Duration::from_secs(3);
            while Instant::now() < tried {
                let v = self.eval(body);
                if ok(&v) {
                    return v;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            assert!(
                Instant::now() < end,
                "{what}: the page shows {} ({})",
                self.eval(body),
                self.eval("return document.getElementById('view').innerText;")
            );
            // The same address again is no navigation: reload.
            self.eval("location.reload(); return true;");
        }
    }

    fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}));
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let v = self
            .agent
            .get(&self.url("/screenshot"))
            .call()
            .expect("screenshot")
            .into_json::<Value>()
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        let dir = artefacts();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// The browser's console messages at level SEVERE since the last call (errors thrown,
    /// failed loads, `console.error`).
    fn console_errors(&self) -> Vec<String> {
        let v = self.post("/se/log", json!({"type": "browser"}));
        let entries = v
            .as_array()
            .unwrap_or_else(|| panic!("chromedriver gave no browser log: {v}"));
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url("")).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn artefacts() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("explorer")
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| s.replace(',', "").parse().ok())
}

#[test]
fn the_explorer_shows_the_live_chain_in_a_real_browser() {
    if std::env::var_os("BASALT_SKIP_BROWSER").is_some() {
        eprintln!("BASALT_SKIP_BROWSER is set: the browser test is skipped");
        return;
    }
    let mut net = Net::new(4, 0, 28300);
    net.start_all();
    net.wait_height(0, 2, MINUTE);
    let browser = Browser::start(28390);
    let page = format!("http://{}/", net.rpc_addr(0));
    let text =
        |id: &str| format!("return (document.getElementById('{id}') || {{}}).textContent || null;");

    // The page loads, shows the height, and the height moves on screen.
    browser.goto(&page);
    let first = browser.wait("a height on screen", MINUTE, &text("height"), |v| {
        as_u64(v).is_some_and(|h| h > 0)
    });
    let first = as_u64(&first).unwrap();
    browser.wait("the height to advance", MINUTE, &text("height"), |v| {
        as_u64(v).is_some_and(|h| h >= first + 2)
    });
    let rows = "return [...document.querySelectorAll('#validators-table tr[data-moniker]')].map(r => [r.dataset.moniker, r.querySelector('.missed').textContent]);";
    browser.wait("four validators in the table", MINUTE, rows, |v| {
        v.as_array().is_some_and(|a| a.len() == 4)
    });
    browser.wait(
        "blocks in the recent blocks table",
        MINUTE,
        "return document.querySelectorAll('#blocks-table tr[data-height]').length;",
        |v| v.as_u64().is_some_and(|n| n > 0),
    );
    browser.wait(
        "bars in the block-time and transactions charts",
        MINUTE,
        "return ['time-chart', 'tx-chart'].map(id => document.querySelectorAll('#' + id + ' svg rect').length);",
        |v| v.as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|n| n.as_u64().is_some_and(|n| n > 0))),
    );
    browser.wait("three peers, by moniker", MINUTE,
        "return [...document.querySelectorAll('#peers-table tbody tr')].map(r => r.cells[0].textContent);",
        |v| {
            let mut got: Vec<String> = (v.as_array().into_iter().flatten())
                .filter_map(|m| m.as_str().map(String::from))
                .collect();
            got.sort();
            got == (1..4).map(|k| net.moniker(k)).collect::<Vec<_>>()
        });
    browser.wait("prevote and precommit bars", MINUTE,
        "return document.getElementById('pv-text').textContent + '|' + document.getElementById('pc-text').textContent;",
        |v| v.as_str().is_some_and(|s| s.contains("of 40 power")));
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors on load: {errors:?}");

    // A transfer sent now shows on its transaction page, its account page and by search.
    let key = net.account_key(0);
    let from = key.public_key().address();
    let nonce = net.client(0).query(&format!("/account/{from}")).unwrap()["nonce"]
        .as_u64()
        .unwrap();
    let to = PrivateKey::from_seed([91; 32]).public_key().address();
    let r = net
        .client(1)
        .broadcast_tx_sync(&transfer(&key, nonce, to, 4242))
        .unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let hash = r["hash"].as_str().unwrap().to_string();
    let tx_page = format!("{page}#/tx/{hash}");
    let shown = browser.open_until(&tx_page, "the transfer's page",
        "const f = id => (document.getElementById(id) || {}).textContent || null; return [f('tx-hash'), f('tx-to'), f('tx-amount'), f('tx-result'), f('tx-height')];",
        |v| v[0] == hash.as_str());
    assert_eq!(shown[2], "4,242");
    assert_eq!(shown[3], "ok");
    assert!(to
        .to_hex()
        .starts_with(shown[1].as_str().unwrap().trim_end_matches('…')));
    let height: u64 = shown[4].as_str().unwrap().parse().unwrap();
    let committed = net
        .client(0)
        .call("tx", json!({"hash": format!("0x{hash}")}))
        .unwrap();
    assert_eq!(committed["height"], height.to_string());

    let account_page = format!("{page}#/account/{}", to.to_hex());
    let shown = browser.open_until(&account_page, "the recipient's page",
        &format!("const f = id => (document.getElementById(id) || {{}}).textContent || null; return [f('account-balance'), f('account-nonce'), !!document.querySelector('#account-txs tr[data-hash=\"{hash}\"]')];"),
        |v| v[2] == true);
    assert_eq!(shown[0], "4,242");
    assert_eq!(shown[1], "0");

    browser.goto(&page);
    browser.eval(&format!("document.getElementById('q').value = '{hash}'; document.getElementById('search').requestSubmit(); return true;"));
    browser.wait("search to open the transaction", MINUTE,
        "return location.hash + '|' + ((document.getElementById('tx-hash') || {}).textContent || '');",
        |v| v.as_str() == Some(&format!("#/tx/{hash}|{hash}")));
    browser.eval(&format!("document.getElementById('q').value = '{height}'; document.getElementById('search').requestSubmit(); return true;"));
    browser.wait(
        "search to open the block",
        MINUTE,
        &text("block-height"),
        |v| as_u64(v) == Some(height),
    );
    let in_block = browser
        .eval("return [...document.querySelectorAll('#view a')].map(a => a.getAttribute('href'));");
    assert!(
        in_block
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == &json!(format!("#/tx/{hash}"))),
        "the block page links the transfer: {in_block}"
    );
    let errors = browser.console_errors();
    assert!(
        errors.is_empty(),
        "console errors on the tx, account and block pages: {errors:?}"
    );

    // A validator stopped now shows missed blocks in the table.
    let stopped = net.moniker(3);
    net.kill(3);
    browser.goto(&page);
    let rows_of = |v: &Value| -> Vec<(String, String)> {
        (v.as_array().into_iter().flatten())
            .filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_str()?.to_string())))
            .collect()
    };
    // Its count climbs past every running validator's (theirs stay near zero: precommits
    // a moment late still join the commit).
    let count = |missed: &str| -> Option<u64> { missed.split(" / ").next()?.parse().ok() };
    browser.wait("the stopped validator's missed blocks", MINUTE, rows, |v| {
        let rows = rows_of(v);
        let of = |pick: &dyn Fn(&String) -> bool| {
            rows.iter()
                .filter(|(m, _)| pick(m))
                .filter_map(|(_, n)| count(n))
                .collect::<Vec<_>>()
        };
        let (down, up) = (of(&|m| m == &stopped), of(&|m| m != &stopped));
        down.first()
            .is_some_and(|d| *d >= 5 && up.len() == 3 && up.iter().all(|u| u < d))
    });
    let h = as_u64(&browser.eval(&text("height"))).unwrap();
    browser.wait(
        "the chain to go on without it",
        MINUTE,
        &text("height"),
        |v| as_u64(v).is_some_and(|x| x > h),
    );
    // Left down past half the downtime window, it is jailed with a small slash: the block
    // reports it and the page lists it, with the validator's status.
    let consensus =
        basalt_node::keys::load(&basalt_node::home::Home::new(net.home(3)).validator_key_file())
            .unwrap()
            .public_key()
            .address()
            .to_hex();
    browser.wait(
        "the downtime slash in the list",
        3 * MINUTE,
        &format!("return [...document.querySelectorAll('#slashing-list li.slash[data-address=\"{consensus}\"]')].map(l => l.dataset.reason + '|' + l.textContent);"),
        |v| {
            v.as_array().is_some_and(|l| {
                l.iter().any(|x| {
                    x.as_str().is_some_and(|t| {
                        t.starts_with("missing_signature|") && t.contains(&stopped)
                    })
                })
            })
        },
    );
    browser.wait(
        "its status to say jailed",
        MINUTE,
        &format!("return (document.querySelector('#validators-table tr[data-address=\"{consensus}\"] .tag') || {{}}).textContent || null;"),
        |v| v.as_str().is_some_and(|t| t.starts_with("jailed until #")),
    );
    browser.screenshot("explorer-desktop.png");
    let errors = browser.console_errors();
    assert!(
        errors.is_empty(),
        "console errors while a validator is down: {errors:?}"
    );

    // Phone width: nothing wider than the screen.
    browser.resize(390, 844);
    browser.goto(&page);
    browser.wait(
        "the page at phone width",
        MINUTE,
        "return document.querySelectorAll('#validators-table tr[data-moniker]').length;",
        |v| v.as_u64() == Some(4),
    );
    let widths = browser.eval("return [document.documentElement.scrollWidth, window.innerWidth];");
    assert!(
        widths[0].as_u64().unwrap() <= widths[1].as_u64().unwrap(),
        "the page is wider than a phone: {widths}"
    );
    browser.screenshot("explorer-phone.png");
    let errors = browser.console_errors();
    assert!(
        errors.is_empty(),
        "console errors at phone width: {errors:?}"
    );
}

#[test]
fn the_page_and_its_files_are_served_with_a_policy_that_forbids_other_hosts() {
    let mut net = Net::new(1, 0, 28380);
    net.start(0);
    let agent = ureq::AgentBuilder::new().build();
    let base = format!("http://{}", net.rpc_addr(0));
    wait_for("the RPC to listen", MINUTE, || {
        agent.get(&format!("{base}/health")).call().is_ok()
    });
    for (path, kind) in [
        ("/", "text/html"),
        ("/explorer/app.js", "text/javascript"),
        ("/explorer/style.css", "text/css"),
    ] {
        let r = agent.get(&format!("{base}{path}")).call().unwrap();
        assert!(
            r.content_type().starts_with(kind),
            "{path}: {}",
            r.content_type()
        );
        let csp = r
            .header("content-security-policy")
            .unwrap_or_default()
            .to_string();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        // Nothing names another host (the SVG namespace is a name, not a fetch).
        let body = r
            .into_string()
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("url("),
            "{path} names another host"
        );
    }
    match agent.get(&format!("{base}/explorer/secret.txt")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("an unknown explorer file: {other:?}"),
    }
    // JSON-RPC over POST / still works beside the page.
    assert!(net.client(0).call("status", json!({})).is_ok());
}
