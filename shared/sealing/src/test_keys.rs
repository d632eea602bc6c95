//! Fixed test keys (made with `openssl genrsa -traditional`, test-only): generating RSA keys in
//! an unoptimised test build takes seconds. The 1024-bit keys decrypt with the `rsa` crate
//! (AWS-LC takes 2048 bits and more), the 2048-bit one with AWS-LC.

use std::sync::OnceLock;

use crate::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;

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

/// Made with `openssl genrsa -traditional 2048`, with a certificate for it that the real
/// kubeseal (v0.40.0) sealed [`KUBESEAL_2048_STRICT`] and [`KUBESEAL_2048_CLUSTER_WIDE`] with.
pub const RSA_2048_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEogIBAAKCAQEAoWaxxbduUy/Qp5vw9fZHmHpGv3UQq3r/bHyAN5JGrhSTqigK\n\
CcWGc8Z5xhuCuxpZ16zELWqZDf+rXkrPmIO0JpzvSKLloAmUWPWBM/ZH8aJaogjx\n\
zZ5IP3pQDvAkx48YdusRWXAWuG1ux0BzP9PiZkfE/Bm/BPGIct6G64Al4JC73yhz\n\
C9BXsgn4wnUkN1RWFIo4EE+61h0Nc1ijtlNuv/7RsLrFiv4rJGidk4qpyemh9yqZ\n\
i+l2b3J4rSC5Yzn7bP216QVJQQ69sBEBwjX2PaDsl4XTwNRCGDPeqCdMY4ALrTdH\n\
UG3Uiir4z8cOsSQbV+3qtI+kf+Fki697ppGZqQIDAQABAoIBAAQMe3EmRNI5ZNaP\n\
ht/kqa8dgiDTYvOqRjYGeYDrXnKHeZzPHFFabyEAXZWmowTmiFJstw8cmXJMc5QN\n\
9F8zDpXZYfdEftYg52PD5NXU28En/XYLG2W5Dr7o5pE5XPLUmByDkQ/ZS/icZicB\n\
auKzAf7m1f4s9ym8lVusUV4e/NRBQwEIJ3WUAVyq2CtGRnEWDodPUvk8q8nC8Mpg\n\
hXaTwx5cUCRPlZhY/E0gR5QQdUsFtXJtnFQN4be1pk1rxqJYknELANgykhZB7sWG\n\
IEH1f06AvzaFanYyrAP5WwZahSeCzdwFftOIp8G2opPiHFI/Pg5OM4Scw76fUgyy\n\
a9DXsXECgYEA0iYTwuzbHVcC4ljbrApZYThqz2CG/IVQpPnMs+8aw48ZDUnV92Fq\n\
2xNU8zQuxgHfti029U7p212wOjBgBOXLEiRlV4MzXNCA5Ndsn+qpxDrLKD9F15a/\n\
wvytaCBiAdQ8WVbr47Dj021eTLzm85RdJQUZDK6IsiiSWReRCoYiwE8CgYEAxJ3O\n\
OiDo74GdEbjyRdKWHILDfcbivo9Ilb08O+iqY9poLjFel1w/vztXcuIn+uiVXv+q\n\
Vh7BqmSy+1yppnTWL2qgy4ZM5XWItC51Y7KGZHauQkdVoeiAiAnfEQwznbVEGymM\n\
WN/GiIePleGPuUQWBQgMBNOH00r/Nm3RIESi0IcCgYAzY3BNqFHkmNRxuTzukxFM\n\
PtmPoJEhyw/vZ85w6bVnwORlZXrXJZFVxSJu3oHZlbe4+tGHpyZ0qDJh6FZynCbO\n\
ZuwJPGIg/jOmwi8j4+RjweTQELjpgUmfSt60qcaNn/Kp/iFs6mKr3wDCTydCxTMJ\n\
zHdVrJBs0JMJCkRDiI2S7QKBgFLi48mFji1Jytlpyli9CiNCzP79FSGYbdUSTY5D\n\
63Dk5f5zOZk9fnIzpg38YTZZTn8Z8MkVdjdK9FkbGzndD1416Utjdo9VGSg8XaiF\n\
3joD/jpasDLtPSIcZzlcl3XosKlyvoPI8n0kCNf6mwhTN6UvW0G9mwjsGOLtMLgV\n\
tz2JAoGATT0GlO6Z1p/RQsbA4uPz28nHR7ZrqI2l+ptR87qTNmIwA3pSugw0YRW7\n\
3JEc+dAZyEA5UVt6LIwqQO5D609yYEFP8Bp2Az+B49icj9dSAAatMNfgPuBDMagI\n\
eef3SBsMPqfNCAGYm2X7cs1+qzT2AqO4bUEH7bJLbdYvvZHqz74=\n\
-----END RSA PRIVATE KEY-----\n\
";

/// `kubeseal --raw --cert <cert of RSA_2048_PEM> --scope strict --namespace prod --name db
/// --from-file=v`, `v` holding `hunter2`: label `prod/db`.
pub const KUBESEAL_2048_STRICT: &str = "AQBLJuKmXkbOfjGVLfOYHu/RKSRfCqdlqNewewwtMY7aeqXh+GD3dKnFa79ed6CaAMU1ire/q3royhpBoLnUJlscTBpDa8Jnab1pem2VPQPFNQ0JaBlUH1W/aGw5RC53vVHH90BLL37rsI9k8T5aqt5ZSFINRbayG1TSixZKsn5zMDDUoPLXqRHGDWQL5/WBQsCC5iWTOErGNHC9Vs6eE8B3M3W9/cfQEW9o9aVlvlICmPlM7zLvhf6GPtVWBMsS5/puGY8C9RRN8CbioXgolLQ+SzQzrx6U6ue4ulirGkbfg+9rToTYGKspZC+fES+9wSn3tEojG6TbQ7DP+k7iLiugUMukGrvmDIjIPMW9Wt1ljheR5i4xVHE=";

/// The same value sealed `--scope cluster-wide`: the empty label.
pub const KUBESEAL_2048_CLUSTER_WIDE: &str = "AQCcf3CaxH0I/q+0dtIlzDtaCtfZOcnCuVesBHIcbxzFdqv4p/U4UfDlbEevUh1BbeNFP/bT6XjopI7oyWqHSTbnvAkCnBAFvvm+OhcZ6J+j5Q4qVbsanRCZrfMNgTvASODoWT3B+l0wAGdMhI95d+S1de/6TwP/QGIkAChzzeJvsCiUzqP/R8PWVPtv8phZbiGqh5psnLfb+e20hgEUc50qfDRJiN+qVwuqA7ARbB+/70ovIXzye2MhblDN2Eracr+8wzOHC2jepTDTdBMBPj+U3o4xq9En71l4gcEvGhw9KytqpX/lzRfKc83SGl+uWbMo1GHBw5BVxE1l68PO+AWFme8aKbBUBc5Do5myr/M39MZf85cEtpY=";

fn parse(pem: &str) -> PrivateKey {
    PrivateKey::new(rsa::PrivateKey::from_pkcs1_pem(pem).expect("test key parses"))
}

pub fn rsa_1024() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| parse(RSA_1024_PEM))
}

pub fn rsa_1024_other() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| parse(RSA_1024_OTHER_PEM))
}

pub fn rsa_2048() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| parse(RSA_2048_PEM))
}
