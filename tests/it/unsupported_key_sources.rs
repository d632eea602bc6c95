//! Key sources enseal cannot open are kept, not dropped: sops 3.12+ files may carry `hckms`
//! (HuaweiCloud KMS) entries, and a later sops may add other sources. While the data key stays
//! (set, edit, updatekeys) their entries are written back as they were and still open the file
//! for whoever holds those keys; where a new data key or new shares would be needed (rotate),
//! or a new file would be encrypted for them, enseal refuses, with sops' exit code, rather
//! than leave their holders out without a word.
//!
//! The files are made by the real sops 3.13.3: an age-encrypted file is given an `hckms` entry
//! by hand (sops cannot write one here: it needs the Huawei Cloud service), then sops 3.13.3
//! itself rewrites it (`sops set`), which it does only after reading that entry as a
//! HuaweiCloud KMS master key (its key ID and creation date parsed): what comes out is what
//! sops writes for such a file, in its own field order.

use enseal_tests::cli::{enseal_bin, Sandbox};
use enseal_tests::peers::{self, SopsRelease};

const SOPS: SopsRelease = SopsRelease::V3_13;

/// A HuaweiCloud KMS key ID as sops wants it (`region:key-uuid`).
const HCKMS_KEY: &str = "cn-north-4:0d0466b1-5b4e-4f5a-9f4e-1234567890ab";
/// The data key as Huawei Cloud KMS would have wrapped it: opaque to enseal, kept as text.
const HCKMS_ENC: &str = "AgDoAHx0ZXN0LW9ubHktaHVhd2VpLWNpcGhlcnRleHQ=";
const HCKMS_CREATED: &str = "2026-01-02T03:04:05Z";

/// The hckms entry as sops 3.13.3 writes it (fields sorted by name, 4-space indent).
fn sops_hckms_entry() -> String {
    format!(
        "    hckms:\n        - created_at: \"{HCKMS_CREATED}\"\n          enc: {HCKMS_ENC}\n          key_id: {HCKMS_KEY}\n"
    )
}

/// The same entry as enseal writes it: stores.go `hckmskey` order, as enseal writes the other
/// key types (sops 3.11's struct order).
fn enseal_hckms_entry() -> String {
    format!(
        "    hckms:\n        - key_id: {HCKMS_KEY}\n          created_at: \"{HCKMS_CREATED}\"\n          enc: {HCKMS_ENC}\n"
    )
}

/// `app.yaml` encrypted by sops 3.13.3 for age key a and for [`HCKMS_KEY`], with identity a in
/// the sandbox.
fn sops_file_with_hckms() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb.write("app.yaml", "password: hunter2\nuser: admin\n");
    sb.sops_of(
        SOPS,
        ["-e", "-i", "--age", &peers::recipient("a"), "app.yaml"],
    )
    .assert_success("sops 3.13.3 -e");
    let text = String::from_utf8(sb.read("app.yaml")).unwrap();
    let text = text.replacen("sops:\n", &format!("sops:\n{}", sops_hckms_entry()), 1);
    sb.write("app.yaml", text);
    sb.sops_of(SOPS, ["set", "app.yaml", "[\"user\"]", "\"root\""])
        .assert_success("sops 3.13.3 set, reading the hckms entry");
    let text = String::from_utf8(sb.read("app.yaml")).unwrap();
    assert!(
        text.contains(&sops_hckms_entry()),
        "sops 3.13.3 kept the hckms entry:\n{text}"
    );
    sb
}

fn text(sb: &Sandbox, name: &str) -> String {
    String::from_utf8(sb.read(name)).unwrap()
}

/// What sops 3.13.3 decrypts `name` to with age key `who` (and nothing else).
fn sops_decrypts_with(sb: &Sandbox, who: &str, name: &str) -> String {
    let mut reader = Sandbox::new();
    reader.use_identities(&[who]);
    let copy = reader.write(name, sb.read(name));
    let out = reader.sops_of(SOPS, ["-d", copy.to_str().unwrap()]);
    out.assert_success(&format!("sops 3.13.3 -d with {who}"));
    out.stdout_str()
}

#[test]
fn set_keeps_the_hckms_entry_and_sops_still_reads_the_file() {
    let sb = sops_file_with_hckms();
    sb.enseal(["set", "app.yaml", "[\"password\"]", "\"changed\""])
        .assert_success("enseal set");
    let after = text(&sb, "app.yaml");
    assert!(after.contains(&enseal_hckms_entry()), "{after}");
    assert_eq!(after.matches("hckms:").count(), 1, "{after}");
    let plain = sops_decrypts_with(&sb, "a", "app.yaml");
    assert!(plain.contains("password: changed"), "{plain}");
    // sops 3.13.3 reads enseal's hckms entry as a master key again (it parses its key ID and
    // date to write the file) and keeps it.
    sb.sops_of(SOPS, ["set", "app.yaml", "[\"user\"]", "\"again\""])
        .assert_success("sops 3.13.3 set after enseal");
    assert!(text(&sb, "app.yaml").contains(&sops_hckms_entry()));
}

#[test]
fn edit_keeps_the_hckms_entry() {
    let sb = sops_file_with_hckms();
    let mut cmd = sb.command(enseal_bin());
    cmd.args(["edit", "app.yaml"]).env(
        "EDITOR",
        "sh -c 'sed s/hunter2/edited/ \"$1\" > \"$1.new\"; mv \"$1.new\" \"$1\"' sh",
    );
    sb.output(cmd, None).assert_success("enseal edit");
    let after = text(&sb, "app.yaml");
    assert!(after.contains(&enseal_hckms_entry()), "{after}");
    assert!(sops_decrypts_with(&sb, "a", "app.yaml").contains("password: edited"));
}

/// updatekeys keeps the data key, so the file's hckms entry still wraps it: a creation rule
/// that names the hckms key keeps that entry while age key b is added.
#[test]
fn updatekeys_keeps_the_hckms_entries_the_creation_rule_names() {
    let sb = sops_file_with_hckms();
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - age: {},{}\n    hckms: [{HCKMS_KEY}]\n",
            peers::recipient("a"),
            peers::recipient("b")
        ),
    );
    let out = sb.enseal(["updatekeys", "-y", "app.yaml"]);
    out.assert_success("enseal updatekeys");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!("+ group 1: age {}", peers::recipient("b"))),
        "{err}"
    );
    assert!(!err.contains("hckms"), "the hckms key is no change: {err}");
    let after = text(&sb, "app.yaml");
    assert!(after.contains(&enseal_hckms_entry()), "{after}");
    assert!(sops_decrypts_with(&sb, "b", "app.yaml").contains("password: hunter2"));

    // The same in the key_groups form of the rule.
    let sb = sops_file_with_hckms();
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - key_groups:\n      - age: [{}, {}]\n        hckms:\n          - key_id: {HCKMS_KEY}\n",
            peers::recipient("a"),
            peers::recipient("b")
        ),
    );
    sb.enseal(["updatekeys", "-y", "app.yaml"])
        .assert_success("enseal updatekeys, key_groups");
    assert!(text(&sb, "app.yaml").contains(&enseal_hckms_entry()));
    assert!(sops_decrypts_with(&sb, "b", "app.yaml").contains("user: root"));
}

/// A creation rule without the hckms key removes it, as sops' updatekeys would, and says so
/// in the key changes it asks to confirm.
#[test]
fn updatekeys_lists_the_hckms_key_a_rule_no_longer_names_as_removed() {
    let sb = sops_file_with_hckms();
    sb.write(
        ".sops.yaml",
        format!("creation_rules:\n  - age: {}\n", peers::recipient("a")),
    );
    let out = sb.enseal(["updatekeys", "-y", "app.yaml"]);
    out.assert_success("enseal updatekeys");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!("- group 1: hckms {HCKMS_KEY}")),
        "{err}"
    );
    assert!(!text(&sb, "app.yaml").contains("hckms"));
    assert!(sops_decrypts_with(&sb, "a", "app.yaml").contains("user: root"));
}

/// A rule naming an hckms key the file has no entry for: enseal would have to wrap the data
/// key for it, and cannot.
#[test]
fn updatekeys_refuses_an_hckms_key_the_file_has_no_entry_for() {
    let sb = sops_file_with_hckms();
    let other = "ap-southeast-1:7e2c1f00-0000-4000-8000-000000000002";
    sb.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - age: {}\n    hckms: [{HCKMS_KEY}, {other}]\n",
            peers::recipient("a")
        ),
    );
    let before = sb.read("app.yaml");
    let out = sb.enseal(["updatekeys", "-y", "app.yaml"]);
    out.assert_code(1, "enseal updatekeys");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!(
            "cannot wrap the data key for hckms {other}: HuaweiCloud KMS is not supported by enseal"
        )),
        "{err}"
    );
    assert_eq!(sb.read("app.yaml"), before, "the file is left as it was");
}

/// rotate needs the new data key wrapped for every key, hckms included: enseal refuses, as
/// sops 3.13.3 does without Huawei Cloud access (both exit 1), and leaves the file as it was.
#[test]
fn rotate_refuses_rather_than_leave_the_hckms_entry_on_the_old_data_key() {
    let sb = sops_file_with_hckms();
    let before = sb.read("app.yaml");
    let out = sb.enseal(["rotate", "-i", "app.yaml"]);
    out.assert_code(1, "enseal rotate");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!(
            "cannot wrap the data key for hckms {HCKMS_KEY}: HuaweiCloud KMS is not supported by enseal"
        )),
        "{err}"
    );
    assert_eq!(sb.read("app.yaml"), before);
    sb.sops_of(SOPS, ["rotate", "-i", "app.yaml"])
        .assert_code(1, "sops 3.13.3 rotate without Huawei Cloud access");
    assert_eq!(sb.read("app.yaml"), before);
}

/// Where only the hckms key could open the file, the error names it and why, with sops' exit
/// code for a data key that cannot be had (128).
#[test]
fn a_file_only_hckms_could_open_names_huaweicloud_kms() {
    let sb = sops_file_with_hckms();
    let mut stranger = Sandbox::new();
    stranger.use_identities(&["c"]);
    let copy = stranger.write("app.yaml", sb.read("app.yaml"));
    let out = stranger.enseal(["decrypt", copy.to_str().unwrap()]);
    out.assert_code(128, "enseal decrypt without a usable key");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!(
            "hckms {HCKMS_KEY}: HuaweiCloud KMS is not supported by enseal"
        )),
        "{err}"
    );
    stranger
        .sops_of(SOPS, ["-d", copy.to_str().unwrap()])
        .assert_code(128, "sops 3.13.3 -d without a usable key");
}

/// A creation rule naming hckms keys: encrypting without them would leave their holders out,
/// so enseal refuses (exit 1, as sops 3.13.3 when it cannot wrap for one) and writes nothing.
#[test]
fn encrypt_refuses_a_creation_rule_that_names_hckms_keys() {
    for rule in [
        format!(
            "creation_rules:\n  - age: {}\n    hckms: [{HCKMS_KEY}]\n",
            peers::recipient("a")
        ),
        format!(
            "creation_rules:\n  - key_groups:\n      - age: [{}]\n        hckms:\n          - key_id: {HCKMS_KEY}\n",
            peers::recipient("a")
        ),
    ] {
        let mut sb = Sandbox::new();
        sb.use_identities(&["a"]);
        sb.write(".sops.yaml", &rule);
        sb.write("app.yaml", "password: hunter2\n");
        let out = sb.enseal(["encrypt", "-i", "app.yaml"]);
        out.assert_code(1, "enseal encrypt");
        let err = out.stderr_str();
        assert!(
            err.contains(&format!(
                "the creation rule names hckms {HCKMS_KEY}, and HuaweiCloud KMS is not supported by enseal"
            )),
            "{rule}: {err}"
        );
        assert_eq!(text(&sb, "app.yaml"), "password: hunter2\n");
        sb.sops_of(SOPS, ["-e", "-i", "app.yaml"])
            .assert_code(1, "sops 3.13.3 -e without Huawei Cloud access");
    }
}

/// A key source enseal does not know at all (one a later sops may add) is kept through set as
/// written, where sops 3.13.3 itself would drop it; the file still opens with age in sops.
#[test]
fn a_key_list_of_an_unknown_source_is_kept_through_set() {
    let sb = sops_file_with_hckms();
    let future = "    future_kms:\n        - key: projects/p/keys/k\n          enc: Zm9yIGEgbGF0ZXIgc29wcw==\n";
    let with_future = text(&sb, "app.yaml").replacen("sops:\n", &format!("sops:\n{future}"), 1);
    sb.write("app.yaml", with_future);
    sb.enseal(["set", "app.yaml", "[\"password\"]", "\"kept\""])
        .assert_success("enseal set");
    let after = text(&sb, "app.yaml");
    assert!(after.contains(future), "{after}");
    assert!(after.contains(&enseal_hckms_entry()), "{after}");
    assert!(sops_decrypts_with(&sb, "a", "app.yaml").contains("password: kept"));
}

/// `rotate --rm-hckms` is how a file with an hckms key is rotated: the entry goes, and the
/// new data key is wrapped for the other keys only (sops' --rm-hckms does the same).
#[test]
fn rotate_with_rm_hckms_drops_the_entry_and_rotates() {
    let sb = sops_file_with_hckms();
    let before = text(&sb, "app.yaml");
    sb.enseal(["rotate", "-i", "--rm-hckms", HCKMS_KEY, "app.yaml"])
        .assert_success("enseal rotate --rm-hckms");
    let after = text(&sb, "app.yaml");
    assert!(!after.contains("hckms"), "{after}");
    let data_value = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("password:"))
            .map(str::to_owned)
    };
    assert_ne!(
        data_value(&before),
        data_value(&after),
        "values encrypted again"
    );
    assert!(sops_decrypts_with(&sb, "a", "app.yaml").contains("password: hunter2"));
}

/// Keys named on the command line or in sops' variable are refused like a rule's: encrypting
/// without them would leave their holders out (exit 1, as sops 3.13.3 here).
#[test]
fn encrypt_refuses_hckms_keys_from_the_command_line_and_the_environment() {
    let mut sb = Sandbox::new();
    sb.use_identities(&["a"]);
    sb.write("app.yaml", "password: hunter2\n");
    let a = peers::recipient("a");
    let out = sb.enseal([
        "encrypt", "-i", "--age", &a, "--hckms", HCKMS_KEY, "app.yaml",
    ]);
    out.assert_code(1, "enseal encrypt --hckms");
    let message = format!(
        "--hckms (or SOPS_HUAWEICLOUD_KMS_IDS) names hckms {HCKMS_KEY}, and HuaweiCloud KMS is not supported by enseal"
    );
    assert!(out.stderr_str().contains(&message), "{}", out.stderr_str());
    sb.sops_of(
        SOPS,
        ["-e", "-i", "--age", &a, "--hckms", HCKMS_KEY, "app.yaml"],
    )
    .assert_code(1, "sops 3.13.3 -e --hckms without Huawei Cloud access");

    sb.env("SOPS_HUAWEICLOUD_KMS_IDS", HCKMS_KEY);
    let out = sb.enseal(["encrypt", "-i", "--age", &a, "app.yaml"]);
    out.assert_code(1, "enseal encrypt with SOPS_HUAWEICLOUD_KMS_IDS");
    assert!(out.stderr_str().contains(&message), "{}", out.stderr_str());
    sb.sops_of(SOPS, ["-e", "-i", "--age", &a, "app.yaml"])
        .assert_code(1, "sops 3.13.3 -e with SOPS_HUAWEICLOUD_KMS_IDS");
    assert_eq!(text(&sb, "app.yaml"), "password: hunter2\n");

    // The variable is for new files only: decrypting with it set is not refused.
    let sb = sops_file_with_hckms();
    let mut reader = Sandbox::new();
    reader.use_identities(&["a"]);
    reader.env("SOPS_HUAWEICLOUD_KMS_IDS", HCKMS_KEY);
    let copy = reader.write("app.yaml", sb.read("app.yaml"));
    reader
        .enseal(["decrypt", copy.to_str().unwrap()])
        .assert_success("enseal decrypt with SOPS_HUAWEICLOUD_KMS_IDS set");
}
