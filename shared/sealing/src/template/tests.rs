//! One test per construct; the expected outputs are what Go 1.26 text/template with sprig
//! v3.3.0 prints for the same template and data (checked with a Go program running
//! sealed-secrets' own function map).

use super::*;

fn data() -> BTreeMap<String, Zeroizing<Vec<u8>>> {
    [
        ("user", "admin"),
        ("pass.word", "s3cret"),
        ("password", "p@ss\"w<rd>"),
        ("host", "db.example.com"),
        ("port", "5432"),
        ("empty", ""),
        ("list", "a,b,c"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Zeroizing::new(v.as_bytes().to_vec())))
    .collect()
}

fn r(t: &str) -> Result<String, TemplateError> {
    render(t, &data()).map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[track_caller]
fn ok(t: &str, want: &str) {
    assert_eq!(r(t).unwrap_or_else(|e| panic!("{t}: {e}")), want, "{t}");
}

#[test]
fn fields_index_and_missing_keys() {
    ok(
        "u={{ .user }} p={{ index . \"pass.word\" }}",
        "u=admin p=s3cret",
    );
    ok("[{{ .nope }}]", "[<no value>]");
    ok("[{{ index . \"nope\" }}]", "[]");
    ok("[{{ print .nope }}]", "[<nil>]");
    ok("plain text", "plain text");
}

#[test]
fn trim_markers_and_comments() {
    ok("a  {{- .user -}}  \n b", "aadminb");
    ok("a {{/* note */}} b", "a  b");
    ok("a {{- /* note */ -}} b", "ab");
    // `{{-3}}` is the number -3: a trim marker needs a space after it.
    ok("a{{-3}}", "a-3");
}

#[test]
fn pipelines_and_sprig_strings() {
    ok("{{ .user | upper }}", "ADMIN");
    ok("{{ .user | b64enc }}", "YWRtaW4=");
    ok("{{ \"YWRtaW4=\" | b64dec }}", "admin");
    ok("{{ \"YWRt\\naW4=\" | b64dec }}", "admin");
    // sprig returns the decoder's error text as the result.
    ok("{{ \"YWR!\" | b64dec }}|{{ \"YWRtaW4\" | b64dec }}|{{ \"YQ==YQ\" | b64dec }}|{{ \"Y===\" | b64dec }}",
       "illegal base64 data at input byte 3|illegal base64 data at input byte 4|illegal base64 data at input byte 4|illegal base64 data at input byte 1");
    ok(
        "{{ .user | quote }} {{ .user | squote }}",
        "\"admin\" 'admin'",
    );
    ok("{{ .password | quote }}", "\"p@ss\\\"w<rd>\"");
    ok(
        "{{ printf \"%s:%s\" .user .port | b64enc }}",
        "YWRtaW46NTQzMg==",
    );
    ok(
        "{{ .host | trimSuffix \".com\" | trimPrefix \"db.\" }}",
        "example",
    );
    ok("{{ replace \".\" \"-\" .host }}", "db-example-com");
    ok(
        "{{ .user | indent 2 }}|{{ \"a\\nb\" | nindent 4 }}",
        "  admin|\n    a\n    b",
    );
    ok(
        "{{ .host | title }} {{ \"  x \" | trim }}",
        "Db.Example.Com x",
    );
    ok("{{ .list | splitList \",\" | join \";\" }}", "a;b;c");
    ok("{{ (split \",\" .list)._1 }}", "b");
    ok(
        "{{ .user | sha256sum }}",
        "8c6976e5b5410415bde908bd4dee15dfb167a9c873fc4bb8a81f6f2ab448a918",
    );
    ok(
        "{{ .user | sha1sum }}",
        "d033e22ae348aeb5660fc2140aec35850c4da997",
    );
    ok(
        "{{ repeat 3 \"ab\" }} {{ cat \"a\" 1 nil \"b\" }} {{ nospace \" a b \" }}",
        "ababab a 1 b ab",
    );
    ok(
        "{{ contains \"min\" .user }} {{ hasPrefix \"ad\" .user }} {{ hasSuffix \"x\" .user }}",
        "true true false",
    );
    ok(
        "{{ trunc 3 .user }} {{ substr 1 3 .user }} {{ trimAll \"a\" \"aabaa\" }}",
        "adm dm b",
    );
}

#[test]
fn json_functions_escape_like_encoding_json() {
    ok("{{ toJson .password }}", "\"p@ss\\\"w\\u003crd\\u003e\"");
    ok("{{ toRawJson .password }}", "\"p@ss\\\"w<rd>\"");
    ok(
        "{{ dict \"b\" 1 \"a\" .user | toJson }}",
        "{\"a\":\"admin\",\"b\":1}",
    );
    ok(
        "{{ dict \"a\" (list 1 \"x\") | toPrettyJson }}",
        "{\n  \"a\": [\n    1,\n    \"x\"\n  ]\n}",
    );
    ok("{{ (fromJson \"{\\\"a\\\":{\\\"b\\\":2}}\").a.b }}", "2");
    ok("{{ toJson .nope }}", "null");
}

#[test]
fn defaults_and_logic() {
    ok(
        "{{ .nope | default \"d\" }} {{ .empty | default \"e\" }} {{ .user | default \"x\" }}",
        "d e admin",
    );
    ok("{{ coalesce .nope .empty .user }}", "admin");
    ok("{{ ternary \"y\" \"n\" (eq .port \"5432\") }}", "y");
    ok("{{ empty .empty }} {{ empty .user }}", "true false");
    ok(
        "{{ and .user .empty }}|{{ or .empty .user }}|{{ not .empty }}",
        "|admin|true",
    );
    ok(
        "{{ eq .nope \"x\" }} {{ ne .user \"x\" }} {{ lt 1 2 }} {{ ge \"b\" \"a\" }}",
        "false true true true",
    );
    ok("{{ len .user }} {{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ atoi .port }} {{ int \"0x10\" }}", "5 6 3 6 3 5432 16");
}

#[test]
fn control_flow_and_variables() {
    ok(
        "{{ if .nope }}a{{ else if .user }}b{{ else }}c{{ end }}",
        "b",
    );
    ok(
        "{{ with .user }}[{{ . }}]{{ else }}none{{ end }}",
        "[admin]",
    );
    ok("{{ with .nope }}x{{ else }}none{{ end }}", "none");
    ok(
        "{{ $u := .user }}{{ $u }}{{ $u = \"z\" }}{{ $u }}",
        "adminz",
    );
    ok(
        "{{ range $i, $v := list \"a\" \"b\" }}{{ $i }}={{ $v }};{{ end }}",
        "0=a;1=b;",
    );
    ok(
        "{{ range $k, $v := dict \"b\" 2 \"a\" 1 }}{{ $k }}={{ $v }};{{ end }}",
        "a=1;b=2;",
    );
    ok("{{ range .nope }}x{{ else }}empty{{ end }}", "empty");
    ok("{{ range $i, $v := list 1 2 3 }}{{ if eq $v 2 }}{{ continue }}{{ end }}{{ if eq $v 3 }}{{ break }}{{ end }}{{ $v }}{{ end }}", "1");
    ok("{{ range 3 }}{{ . }}{{ end }}", "012");
    ok("{{ $d := dict }}{{ $_ := set $d \"k\" .user }}{{ $d.k }} {{ hasKey $d \"k\" }} {{ get $d \"k\" }}", "admin true admin");
    ok(
        "{{ range $k, $v := . }}{{ if eq $k \"port\" }}{{ $v }}{{ end }}{{ end }}",
        "5432",
    );
    ok(
        "{{ define \"x\" }}<{{ . }}>{{ end }}{{ template \"x\" .user }}",
        "<admin>",
    );
    ok("{{ block \"b\" .port }}[{{ . }}]{{ end }}", "[5432]");
}

#[test]
fn literals_and_printing() {
    ok(
        "{{ 1000000.0 }} {{ 1.5 }} {{ 0x10 }} {{ 1e3 }} {{ 'a' }} {{ true }}",
        "1e+06 1.5 16 1000 97 true",
    );
    assert!(matches!(
        r("{{ nil | default 1 }}"),
        Err(TemplateError::Exec { .. })
    ));
    ok("{{ `raw\\n` }} {{ \"a\\tb\" }}", "raw\\n a\tb");
    ok(
        "{{ list 1 \"a\" nil }} {{ dict \"a\" 1 }} {{ . | len }}",
        "[1 a <nil>] map[a:1] 7",
    );
    ok(
        "{{ printf \"%05d|%-4s|%q|%v|%x|%.2f\" 42 \"ab\" \"q\" .nope \"hi\" 3.14159 }}",
        "00042|ab  |\"q\"|<nil>|6869|3.14",
    );
    ok(
        "{{ printf \"%s\" }}{{ printf \"%d\" \"x\" }}",
        "%!s(MISSING)%!d(string=x)",
    );
    ok(
        "{{ print 1 2 \"a\" 3 }}|{{ println \"a\" 1 }}",
        "1 2a3|a 1\n",
    );
    ok(
        "{{ urlquery \"a b&c\" }} {{ html \"<a>\" }}",
        "a+b%26c &lt;a&gt;",
    );
}

#[test]
fn errors_name_the_construct_and_never_a_value() {
    let e = r("{{ .user | nosuchfunc }}").unwrap_err();
    assert_eq!(e.to_string(), "line 1: function \"nosuchfunc\" not defined");
    // Sealed Secrets removes these three from sprig's map.
    for f in ["env", "expandenv", "getHostByName"] {
        assert!(
            matches!(
                r(&format!("{{{{ {f} \"x\" }}}}")),
                Err(TemplateError::Parse { .. })
            ),
            "{f}"
        );
    }
    assert!(
        matches!(r("{{ randAlphaNum 4 }}"), Err(TemplateError::Unsupported(n)) if n == "randAlphaNum")
    );
    assert!(matches!(r("{{ .user "), Err(TemplateError::Parse { .. })));
    assert!(matches!(
        r("{{ if .user }}x"),
        Err(TemplateError::Parse { .. })
    ));
    assert!(matches!(r("{{ $x }}"), Err(TemplateError::Parse { .. })));
    // A missing value handed to a string parameter is an error in Go too.
    let e = r("{{ .nope | upper }}").unwrap_err();
    assert!(
        e.to_string().contains("invalid value; expected string"),
        "{e}"
    );
    for t in [
        "{{ fail .password }}",
        "{{ .password | int | upper }}",
        "{{ .password.x }}",
        "{{ index .password 99 }}",
        "{{ hasKey . .password }}",
    ] {
        let e = r(t).unwrap_err().to_string();
        assert!(!e.contains("p@ss"), "{t}: {e}");
    }
}
