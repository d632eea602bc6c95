//! Fixed 1024-bit test keys (made with `openssl genrsa -traditional 1024`, test-only): generating
//! RSA keys in an unoptimised test build takes seconds.

use std::sync::OnceLock;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::PrivateKey;

pub const RSA_1024_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIICWwIBAAKBgQDAzm/wC3lvys9mPa0mhvLWU/dQCSR5wjyOzBZPyEw7j5XuClc/\n\
xwhzsroWpsx4/w9xEJ6bqhCLl+X8ZGbppmY79ZmV1Bx9HEINuQ44LIHlTeKo/fnc\n\
LxEje3S/sqeL7Am78HMlSA7wvJDy3guqOSEnXXTIb6Ljhb5+tgBxjIzpAQIDAQAB\n\
AoGAeyNdWnH5nOxqiWHatEB712bJDNTJ9vmWs5yko0/JYEDUALOaBaGYRExhjRX6\n\
gUxlEFEM+14iMwVQXWHCWHdt0sBg6ioxw6DwImh+3kIP3BXNXdOyXrM5ixgOTN+Q\n\
E3cFWJf4KfQNk7dq5eRu6T15tSU569HsTK1Ywlgufw1UKAECQQD1HFVrXF8AigfC\n\
mU2s5b088qwUFKKD//0PN47ACxTuUzmmJnql4naiGb0IVXZ8o/CGJBhFrBCNOke6\n\
Si15hvKFAkEAyV89/hvTOrecg/QXghFnP6gKBTJr7wdf20B8/1n/82JBIeECb7rp\n\
oelUqiKL7fznlN/ZlXY+2cFg9YqsnRVLTQJANfI+epqh7iRzAMls5xjJRZjDdsfz\n\
3MmCkM7RhELsIGgA0Ci35bqqEZNIn4Tvxw7t6RgYn3z3R54EG2QoDg89YQJATmU/\n\
0y+t+kwFKPHcPQzdb1DSJdfNYU8zqD3g6+Bz3qK/zJq2why4XApkpZ+xbkNpPPIw\n\
2RkhutCoGK+WJ8lkeQJACr4sManNc+uy6h9HOtivncuZXrTj3Jr5cXoHBzYqZd50\n\
q+6ZF61XBzwGZN+nF8IBYMG9LuFdgeKJRSrRtFZNiA==\n\
-----END RSA PRIVATE KEY-----\n\
";

pub const RSA_1024_OTHER_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIICXAIBAAKBgQDY+12fV1XdrupSsQqotsrZH+zS2zjUmgw9Cso+F8UL5RTzyE93\n\
VexeFyLI0MjZH7h3f/YS296tu0R7fiLN9UGaPneQ/+zztbA+TxlG4vO6vQT1uKk/\n\
Fogym7vm1YNvOLgI5TssqMLe/m6611DAnU1qNMF04lpHL3xmYwTVQJcB+QIDAQAB\n\
AoGBAJUuxiDeyC+hqoPuK3jyLKd51rbmeL1bqNxzRbfJWfYiq/Qsnc5bqibK22Sc\n\
f+sgbxDiTsqKlyB1p9EMWVunq1DflFG/1JJtd5wxB0h95QKTUYsteeBLNgFIADqg\n\
E87z3L8N1rLU3CziJ2Saqezpyo8V0K3t5ZwwXQs8O7i8NT3xAkEA/IB079QL6H2r\n\
MsfCYUWUleq0MVU77Bess2iihD25NKC9BLtZ9cD2JXkYy2+P7/URQLIizaL7PtzH\n\
TmzzsOm6DQJBANv87mUFiTYGjRWsk6b7VCdLiLG5B5jIY7GgjEVrGbLe795OxAPm\n\
VsgPs2iXkRfAB12iOiFgemLHhM1dhYLNiJ0CQHcYI4+GxUMYGuptm7oDdoyrUeg+\n\
2m+FzxgjzxtufW9cLSsRLuIh7DdKga5aZVp5jXSlUJMLP1OsEHlmHB6ibvUCQF8u\n\
vOcw0gFyLDEojmo9bFfkMqzS5hqQ+bGtSYPvpxrhot+JLP6S9xFw2atziO/Bwm4c\n\
9xHh8JI0yZ0hzdaen3ECQG7lF9VNboEN0ZrNs2eNbYbvWDD9ZAMrxCBSdYTmBJwe\n\
ttn7cK+X/lB4CKyHBb70aFnVguKK7UGodViNoGzMHiU=\n\
-----END RSA PRIVATE KEY-----\n\
";

fn parse(pem: &str) -> PrivateKey {
    PrivateKey::from_pkcs1_pem(pem).expect("test key parses")
}

pub fn rsa_1024() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| parse(RSA_1024_PEM))
}

pub fn rsa_1024_other() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| parse(RSA_1024_OTHER_PEM))
}
