//! Why this exists: hostile and broken payloads of every kind a producer (or an attacker with
//! queue access) can push, each with what must become of it: a job whose top-level id can be
//! read gets exactly one callback (usually `failed`), anything else one dead letter.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// What a payload must end as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// One terminal callback for this job id.
    Callback(String),
    /// One dead letter.
    Dead,
}

/// `n` payloads from `seed`, unique ids drawn from `prefix`.
pub fn payloads(n: usize, seed: u64, prefix: &str) -> Vec<(Vec<u8>, Expect)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|i| one(&mut rng, &format!("{prefix}-{i}"))).collect()
}

fn job(id: &str) -> serde_json::Value {
    json!({"id": id, "type": "sdxl_image_fast", "prompt": "fuzz", "user_id": "u"})
}

fn one(rng: &mut StdRng, id: &str) -> (Vec<u8>, Expect) {
    let cb = |p: String| (p.into_bytes(), Expect::Callback(id.to_string()));
    match rng.gen_range(0..14) {
        0 => cb(job(id).to_string()),
        1 => {
            // Invalid UTF-8 somewhere in an otherwise fine payload.
            let mut b = job(id).to_string().into_bytes();
            let at = rng.gen_range(1..b.len() - 1);
            b.insert(at, [0xff, 0xc3, 0x80 ^ 0x40, 0xfe][rng.gen_range(0..4)]);
            if std::str::from_utf8(&b).is_ok() {
                b.push(0xff);
            }
            (b, Expect::Dead)
        }
        2 => {
            let depth = rng.gen_range(130..5000);
            let (open, close) = if rng.gen_bool(0.5) {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            cb(format!(
                r#"{{"config":{}1{},"id":"{id}","type":"sdxl_image_fast"}}"#,
                open.repeat(depth),
                close.repeat(depth)
            ))
        }
        3 => {
            let len = rng.gen_range(4001..200_000);
            cb(json!({"id": id, "type": "sdxl_image_fast", "prompt": "x".repeat(len), "user_id": "u"}).to_string())
        }
        4 => {
            let n = [
                "1e400",
                "-1e400",
                "1e20",
                "-5",
                "0",
                "18446744073709551616",
                "1.5",
                "NaN",
            ][rng.gen_range(0..8)];
            let field = ["num_inference_steps", "guidance_scale", "width", "num_images", "seed"][rng.gen_range(0..5)];
            cb(format!(
                r#"{{"id":"{id}","type":"sdxl_image_fast","prompt":"p","user_id":"u","config":{{"{field}":{n}}}}}"#
            ))
        }
        5 => {
            let bad = [
                "../../evil-bucket/",
                "..",
                "a#",
                "a?b",
                "a/b",
                "x\r\nINFO forged ",
                "%2e%2e",
                " ",
                "é",
            ][rng.gen_range(0..9)];
            let unsafe_id = format!("{bad}{id}");
            let p = json!({"id": unsafe_id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u"});
            (p.to_string().into_bytes(), Expect::Callback(unsafe_id))
        }
        6 => {
            let bad = ["../../evil-bucket", "..", ".", "a#b", "a/b", "", "u\n"][rng.gen_range(0..7)];
            cb(json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": bad}).to_string())
        }
        7 => cb(format!(
            r#"{{"id":"{id}","prompt":"\ud800","type":"sdxl_image_fast","user_id":"u"}}"#
        )),
        8 => {
            // Truncated JSON: the id is read only if the cut falls after it.
            let full = job(id).to_string();
            let cut = rng.gen_range(1..full.len() - 1);
            let head = &full[..cut];
            let expect = if head.contains(&format!("\"id\":\"{id}\"")) {
                Expect::Callback(id.to_string())
            } else {
                Expect::Dead
            };
            (head.as_bytes().to_vec(), expect)
        }
        9 => {
            let v = ["null", "7", "[]", "{}", "true", "\"\""][rng.gen_range(0..6)];
            (
                format!(r#"{{"id":{v},"type":"sdxl_image_fast"}}"#).into_bytes(),
                Expect::Dead,
            )
        }
        10 => {
            let junk: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen_range(0x20..0x7f)).collect();
            let mut p = b"#".to_vec();
            p.extend(junk);
            (p, Expect::Dead)
        }
        11 => cb(json!({"id": id, "type": ["sdxl_image_fast"], "prompt": {"a": 1}, "user_id": 5}).to_string()),
        12 => cb(
            json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u",
                        "metadata": {"reference_image_url": "http://[::127.0.0.1]:1/x.png"}})
            .to_string(),
        ),
        _ => cb(
            json!({"jobId": id, "jobType": "sdxl_image_high", "prompt": "p", "userId": "u",
                       "config": {"num_images": 2}})
            .to_string(),
        ),
    }
}
