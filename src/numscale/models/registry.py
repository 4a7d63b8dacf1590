"""Every file and tensor the book reads: where it comes from, its name, its sha256.

* The **embedded data** (:data:`EMBEDDED`): small real files shipped inside the package
  (``numscale/models/data``, provenance and licences in ``data/PROVENANCE.md`` and
  ``data/LICENSES.md``), checked against these sha256 every time they are loaded.
* The **hub**: the Hugging Face ids and file names a reader may choose explicitly.
* The **released GPT-2 small tensors** (:data:`RELEASED_SHA256`): the sha256 of each
  tensor's float32 little-endian bytes in Hugging Face layout (Conv1D weights (in, out)),
  computed from the three files of ``../shared/reference`` (gpt2_small_layernorm.npz,
  gpt2_small_partial.npz, gpt2_small_attention.npz), whose provenance files document that
  every one of these tensors equals, byte for byte, an independent export of the released
  weights (0hq/WebGPT's Git LFS oids, written from the Hugging Face PyTorch state dict).
  They cover 123 tensors: every LayerNorm, every bias, the position embeddings and the
  attention weights; not the token embeddings or the MLP weights. Used by
  :func:`numscale.models.gpt2_model.is_released_gpt2_small`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The folder of the embedded data, inside the installed package.
DATA_DIR = Path(__file__).resolve().parent / "data"

#: Embedded files: name -> (bytes, sha256). The sha256 are those of the published files
#: (llama2.c's stories260K and tokenizer; the first 500 TinyStories validation stories;
#: GPT-2 small's 50 LayerNorm tensors), as data/PROVENANCE.md records them.
EMBEDDED: dict[str, tuple[int, str]] = {
    "stories260K.bin": (
        1_056_540,
        "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696",
    ),
    "tok512.bin": (
        6_227,
        "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312",
    ),
    "tinystories_val.txt": (
        412_731,
        "f8f1499ca5274df8b7e8f8ff007c656d50ca1cbba27569026d6b9e1b043bf889",
    ),
    "gpt2_small_layernorm.npz": (
        167_822,
        "6f37f011856bf88b3455a5a0c7c5920b1eedcd2094a35967c116860e2f862857",
    ),
}

#: GPT-2 small on the Hugging Face hub, and the file the loader reads from it.
GPT2_HUB_ID = "gpt2"
GPT2_HUB_WEIGHTS = "model.safetensors"
#: The embedded GPT-2 file: the LayerNorm gains and biases only.
GPT2_EMBEDDED = "gpt2_small_layernorm.npz"

#: stories260K on the hub (a model repository) and the TinyStories text (a dataset).
STORIES260K_HUB_ID = "karpathy/tinyllamas"
STORIES260K_HUB_FILES = {
    "checkpoint": "stories260K/stories260K.bin",
    "tokenizer": "stories260K/tok512.bin",
}
TINYSTORIES_HUB = ("roneneldan/TinyStories", "TinyStories-valid.txt")
#: stories260K's files in a local folder (and in the embedded data).
STORIES260K_FILES = {
    "checkpoint": "stories260K.bin",
    "tokenizer": "tok512.bin",
    "stories": "tinystories_val.txt",
}
#: sha256 of Karpathy's published checkpoint and tokenizer.
STORIES260K_SHA256 = {
    key: EMBEDDED[STORIES260K_FILES[key]][1] for key in ("checkpoint", "tokenizer")
}


def sha256_file(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def embedded_file(name: str) -> Path:
    """The path of embedded file ``name``, after checking its size and sha256.

    ``KeyError`` for a name that is not embedded; ``ValueError`` naming the file when it
    is missing from the installed package or its bytes are not the published ones.
    """
    if name not in EMBEDDED:
        raise KeyError(
            f"{name!r} is not embedded; embedded files: {', '.join(EMBEDDED)}"
        )
    path = DATA_DIR / name
    size, digest = EMBEDDED[name]
    if not path.is_file():
        raise ValueError(
            f"the embedded file {name} is missing from the installed package "
            f"(numscale/models/data); reinstall numscale"
        )
    if path.stat().st_size != size or sha256_file(path) != digest:
        raise ValueError(
            f"the embedded file {name} does not match its recorded sha256 "
            f"{digest[:12]}… ({size:,} bytes): it was altered; reinstall numscale"
        )
    return path


RELEASED_SHA256: dict[str, str] = {
    "h.0.attn.c_attn.bias": "ef36c6f4fcc7f15fdb5882316834dc7e304ae5f9e8ae32673108c6efa441f787",
    "h.0.attn.c_attn.weight": "df332e9d9ae908db358a00423f14af1c0036bc9a2332aca395adf68e3eb08b48",
    "h.0.attn.c_proj.bias": "52c55de1fa9685a50e5bd91c5741fc9ad80c03671c1eec71d92010194140e9a7",
    "h.0.attn.c_proj.weight": "e13178678e8c1e591d293bc5a96f081251d734d8a43b7038cc98329742e79952",
    "h.0.ln_1.bias": "5a4a949fb3e7a463e3f1aca6f5285979f5fd330d9432ef9f272adb8d55bfbb2d",
    "h.0.ln_1.weight": "87c92a5f0409ab2a8f2b92a9ebbb62ab9215590402d38929402c84357d53e4ae",
    "h.0.ln_2.bias": "52af0f6c03edf6298c4819da6d63b831cae48de804a0a23b19aca674efadf3b2",
    "h.0.ln_2.weight": "b9e28ffbdfcac5b56ba9a9e8ccd9fe0efcc603f4f0d00685615e1c9cc9994960",
    "h.0.mlp.c_fc.bias": "d71a74a230d32edd0a3e2562ba65a4cbc8ca1d1ff918a5f53468b0d096ad0086",
    "h.0.mlp.c_proj.bias": "10a0e86f0d29a95ba16fa1a2cf5cca3ccc9b8c5cc21e82ed3169f40101e459be",
    "h.1.attn.c_attn.bias": "467fba1ba8e52f8646c93bb101234c37b07fd51ba3cb5772c010e6aa68d1ed34",
    "h.1.attn.c_attn.weight": "17cadf5370083f5d58dc8be9ceda794154d29c0f11cf8a38f347e84492093f32",
    "h.1.attn.c_proj.bias": "2637585a0b7a7cddc1cb97129712dcc3f1ee75cc4455cfb2429c956867ea24c5",
    "h.1.attn.c_proj.weight": "a6a27ec95bbc643c83a5206dca39af86d02a9c17c12b24d5640b7eccc48f9b21",
    "h.1.ln_1.bias": "c9a75b7ca299432f7c4547e856d5914595d064548e9b9d375b4e3e920219f580",
    "h.1.ln_1.weight": "9614528015a8b5dc32de46003e25e9bca7715ee69f4a838836c789509f51acd7",
    "h.1.ln_2.bias": "fccc1781905485f36ab7d62ed9d2d265cebda07d27e9d267923ac3cbbd43a82b",
    "h.1.ln_2.weight": "b01fbb6df507a3ebe395e92e88c1df066ad477141130dff987e030caf6b5ceba",
    "h.1.mlp.c_fc.bias": "65347695d5a622d1f3a42b6a95b9010a1fce980dfd707abcefcb36088f9076d8",
    "h.1.mlp.c_proj.bias": "39965842da4b639219358ba6757393ade2d2d0b0b6eda6c5e51cad2ac4aec205",
    "h.2.attn.c_attn.bias": "9cd34935245ac07685284ea2eac419f2a68bcbe8f045eecf262544d457678bc7",
    "h.2.attn.c_attn.weight": "c5702a21258404c3f3393891d8ac943944732e58269955c3506ff164190eb285",
    "h.2.attn.c_proj.bias": "22dc4d1b92f2696b72362acd3238dc8491fe45d6ffa07f72747f35561fd1ff8e",
    "h.2.attn.c_proj.weight": "04f8d1bf3b60fc1d444aefe697cf8f136eff217d176e581ebd0384a15ee8e99a",
    "h.2.ln_1.bias": "9af0d11c8bf13ca5e4610db3dd59fd85d81b164601caadc12d574f7d34ad8fd8",
    "h.2.ln_1.weight": "0191be1336ee8c22e8d43e1863fe199c09474cdb4840d1cadfe01b2572ff7cf9",
    "h.2.ln_2.bias": "c9fca51b9f331e29c8b67d4395b09854f6498d4edf7335393fd38f9d53424b23",
    "h.2.ln_2.weight": "b1d71d7ca62a19a32b557736894a0fd2c508b70ce0331142b61e061f732346b1",
    "h.2.mlp.c_fc.bias": "2765ac2cd7430cf0c1bb511e0ce3ff8ec36f13c3c7523e714f40358fec128ffd",
    "h.2.mlp.c_proj.bias": "bc1394c11c732512984180b39a2b81d7d93b92654d19b59356f76b829d8653c1",
    "h.3.attn.c_attn.bias": "ccba1e26e98da0553ebde3f439ebfd477288a7019da77e7c4458d8e8ef9ba03e",
    "h.3.attn.c_attn.weight": "a85a482eb972a89371cb918a8600e2bd0d676ad79bea30b12d266eae670440ab",
    "h.3.attn.c_proj.bias": "517b2e2187c251971aa455c516ab10cdc1ffb329b10e10668847e9d73a45d161",
    "h.3.attn.c_proj.weight": "d93f68892a300c6e59ee32a7d6101db8f934bb5cdfac1dcad2164f85d0316b09",
    "h.3.ln_1.bias": "e0df07d4104990fc925e8323a8234e99fe51e661f7b3fd0be537c8a85dd95af8",
    "h.3.ln_1.weight": "5c645e3ef0c240592a5f01e1f88a069eb882d459f8d27fe59a304b4206547fc5",
    "h.3.ln_2.bias": "618d4065b4b02ecf8205797ba1462750879a273b35fbb6fd43b866b791af9f94",
    "h.3.ln_2.weight": "b75ae3bd11256b16bb8dd112d94d7bb5290b5d7188795098f1ad661d5131078b",
    "h.3.mlp.c_fc.bias": "1c8f1f1bae9d7a47c5c4dff6d3fbb59b6b04f03a2306f76f590c32eda1ce586e",
    "h.3.mlp.c_proj.bias": "203983d8a4b322ff0d0914a96537a9e42c27016b2589473c5eb733d546c28370",
    "h.4.attn.c_attn.bias": "13caa8e5d0cde4068374b220a6d61978f9eedeac7018a914d0c7d4494505109d",
    "h.4.attn.c_attn.weight": "e999b277552708af1fb43929f2d7798594627a95e26dc99c7d31d97dec32cb2f",
    "h.4.attn.c_proj.bias": "12ce61485860901638dbb967bfcfb3ae30939d345fbc2f5fc1fde99022c70e8e",
    "h.4.attn.c_proj.weight": "fd4832c3b53e2e5006ec032a1ae062f6f43ce320d7c7674ff266f770c795106c",
    "h.4.ln_1.bias": "6c6aeb4b7ef9b742962d7bcde232d39ba749d8a2de62cbb4a4f458737fef7084",
    "h.4.ln_1.weight": "bf129fef6b6628f08deeff4708af62fd5d2f7e1bb7eacc17561bc82b60c5c50d",
    "h.4.ln_2.bias": "0555ff00c21dded930a8b52f384649e5d4aa07f586f19c7380311319a48d5553",
    "h.4.ln_2.weight": "7a9f0e04c79ad95e00051ee8ef52a7f1417a7a345d7f1d9f426aeb56b0ac4537",
    "h.4.mlp.c_fc.bias": "2d18dab3491739f503390f1fb0d50925a296ecae2acbee224224c08456041bd5",
    "h.4.mlp.c_proj.bias": "8357e8ef29c291564e7b24f12bba0419e67ebe68f9ec5b6e0434bec11f420af2",
    "h.5.attn.c_attn.bias": "88f7a9fed056edb8150cecb3aa04108ca555d54f04fc8371693b643571d7ecd1",
    "h.5.attn.c_attn.weight": "0d734b6b250378058a27e933f923f9a9857c6947c35c7668180b1287f2a98d0e",
    "h.5.attn.c_proj.bias": "257e6070c41a5ac1c1977f407249c38453370a7e2b7b7083b801178e4b07392b",
    "h.5.attn.c_proj.weight": "f70cda4ea74169e206ca457720e9e34db4d8cb0e11761e3179c7aa4519cb03d8",
    "h.5.ln_1.bias": "0eb9eee4d2369d36fc2a04839e36a010278858bae789f5895aeed662f16d7792",
    "h.5.ln_1.weight": "d5ed450453b2a76cf52f3d7fabce3493965551311f977e3c518ec4621106a4de",
    "h.5.ln_2.bias": "49431716411b3ab43cdf929234ba34a5bc78008510652fc2da16f4b1c28775f8",
    "h.5.ln_2.weight": "bc0e51c254f443b53a207baef543b0c77e6dac08b41341322dc5174310dbdee8",
    "h.5.mlp.c_fc.bias": "f9d1f6351e138e2a48744a782e398796ef21d667ea1c813646b7994ba137fbf3",
    "h.5.mlp.c_proj.bias": "0389e2ca03a50993765309402691f0312c269bb6d0194f3f80001ce7881086f2",
    "h.6.attn.c_attn.bias": "60a1bbc9ad182f5bfeb2dbb60614a06c00551676ac7627ca044aff55b0247ccf",
    "h.6.attn.c_attn.weight": "2e2aa09354477f74f0e137bd54f457f7614cba06e1c70acbab0ae16ea7d33c22",
    "h.6.attn.c_proj.bias": "4798e6f3ed4910c11cc55ed530966fd4f747c25743739ad8de152ffef0996718",
    "h.6.attn.c_proj.weight": "708fe340f34bf3e5ce8c2b46d13367a05c6333748dad09811983131cf79328a9",
    "h.6.ln_1.bias": "c0874e46eab1a6426599ec9784d2ec04c786d8df5c17fc8984ec42930d5679ac",
    "h.6.ln_1.weight": "8b2236a1d2958360879d5094d62d4728e56d06c06e7a22536473be4fba6d2f8e",
    "h.6.ln_2.bias": "36e9db9b57b6a886a1c10b351f645ceb19be1ec4c90a0af1b57f80184a02752a",
    "h.6.ln_2.weight": "b6a44d99d843df8fd68463389a4efc449f1441014e874aec0ed8467b3cb35c68",
    "h.6.mlp.c_fc.bias": "ee10d3e344c4f45d9c6f4e293ef30fc45513c1407139f5f2efbfeb62edf4571c",
    "h.6.mlp.c_proj.bias": "27a09ed1c198859314c993301fdd25b101107c42a8ea8dad0194a61e9e9fea61",
    "h.7.attn.c_attn.bias": "3c44f02bfaf0d3c7e299bd47f0e59421326e7fcdb8128a9dd38002e1245de5c4",
    "h.7.attn.c_attn.weight": "c101117c479f6d522161e177a1360429b6c43760cd08fc6b05df275d3bde019e",
    "h.7.attn.c_proj.bias": "4b7a5e213d9ee9872981592c873ef6f338c682ab5654c817e4014618502f5fb4",
    "h.7.attn.c_proj.weight": "ba453997dadc87090ad63c5c329d04630088f4e7f38067cbcdf29725e43ad6c8",
    "h.7.ln_1.bias": "d68aeb30a5e9e4c47dce864de23565fe0e5bfebcda078bb75d85e16626e5eb70",
    "h.7.ln_1.weight": "dee0061336b027e6306a7b2b80f909edab923a444f492caf03ed530e1e4e8ab0",
    "h.7.ln_2.bias": "ac227d13adec753e107febc6dd90f5f495e79c4869582314af1d4c222a564951",
    "h.7.ln_2.weight": "5963fa68c304222f4b1dc7e2a4a7439407cbb69d6852fd1ad92ff018a74e4de2",
    "h.7.mlp.c_fc.bias": "6688980419ea053fccede5261b04f7d86ffefd57a457b10c15e8ecc7961ffe02",
    "h.7.mlp.c_proj.bias": "5d64a5ba0130a1ac1894a47f027322881d8bff3b3b38ea7f4d74ec72463c6dae",
    "h.8.attn.c_attn.bias": "026218fac39588b78bfa747e12b81ccf9b558fbb15205fb55c9cec29509ce79a",
    "h.8.attn.c_attn.weight": "460fa88fd47022f0269b6ffad8712360005535a96b86ae8ed5755785efff9a60",
    "h.8.attn.c_proj.bias": "207a1897b77a033bc3c883232c86151bf2646f811c3c1dbe0a4da4f1f1e98527",
    "h.8.attn.c_proj.weight": "214802a449991cc6b5b1858ba2a44740c5754ad555d7895f20f09c5634494da7",
    "h.8.ln_1.bias": "28362a797737604473418736cb360b0fc43aecc7e8b42af3abaf9402bfb95320",
    "h.8.ln_1.weight": "86c20d0ff9b523c865a7f39bdd8b1ec1d6c7e308169bf977a42443d42beea98c",
    "h.8.ln_2.bias": "55ca7b08f00a2966e8d3d458073e5dc8d9ee417cf2cf53dc1d8d6f1b6f6b59df",
    "h.8.ln_2.weight": "2df2d5283d9e81dcc6e2c9d33acfeef16c9cf797f70469c30087cbba2b8c893b",
    "h.8.mlp.c_fc.bias": "dad4ea7c1036088c2c3bf3525048a5e413705159c03a480157bd316fbffc8aed",
    "h.8.mlp.c_proj.bias": "8055c6f339e4a3c4628a35ef92a2f503d30481022fc378380851a6edf9e96dad",
    "h.9.attn.c_attn.bias": "45efa4ee6ac320f7eb5449955b7ac0154c814d9874c375abd47b9001e2855fd9",
    "h.9.attn.c_attn.weight": "1c4d50c6b3e7c62591e7287b5940ffa58ced69aec815e585b94e872e5e79bed4",
    "h.9.attn.c_proj.bias": "f5251700af6d9a6b3885cf9c7815d70c6ff17a0dc939c005465e4756c2ed55dc",
    "h.9.attn.c_proj.weight": "b6716a7af12ccf45e27e92aa7b033038175fbc82fc22750291c0f759cf7b5c6b",
    "h.9.ln_1.bias": "43dcf271d476d0a084d70934e04db7bfd23bc421006f8524e0cb6c4bca41631b",
    "h.9.ln_1.weight": "a388be1c285b378cee43f48ecce1a56e9f39c537603ccbdf43314179b70d2964",
    "h.9.ln_2.bias": "ebe7f54adc51cbd1c0a90ffe54b5b082f612f21fff7590b31c91b9a45d6dbae4",
    "h.9.ln_2.weight": "21187e2fb37e9d5bd9bfb8c7917b6e4651c0bba0edd8e602fe33b532a863216f",
    "h.9.mlp.c_fc.bias": "f325dd48d6535236fc82f15c296c0ba72305107373084e7d83a2af7b61a01945",
    "h.9.mlp.c_proj.bias": "ff91b8d9d462396042d5ec07c14c7be91b701bcbe7aab999597ed78b6c7b59aa",
    "h.10.attn.c_attn.bias": "f9377e6334fdc42c0cabba230f355daf07ce76f6af20edfdc8ae8e1dd5eaa074",
    "h.10.attn.c_attn.weight": "b43d111a3f0cee2c55a141f6724f11516d91c0a6e9c5fdf18cd85ef8ba36fc93",
    "h.10.attn.c_proj.bias": "5488c5c27460f555fd4b983213d51e8f57a91b10e9ce63aecaf1713008ba5c1b",
    "h.10.attn.c_proj.weight": "7a6473a5c23cf4efe0b37d89f183e151d480e31c6b6dc06f56a5c41cc5dbfefa",
    "h.10.ln_1.bias": "d3090fe7c30e68fbc6029cccaca150eb39b853d7982b81dffe7374981f34d2f9",
    "h.10.ln_1.weight": "9bb50ac0614875e3e0ad6b9ba9acb2db50ed1ccfa15e34ae54a9c867eebff6e5",
    "h.10.ln_2.bias": "d8f6b44d46bf330757f31931761bea5d06176d96930871a216893662c0b54531",
    "h.10.ln_2.weight": "3605b6e73b6764e8d8329e6cbe1561203d57f69a4745e87a6b82e16b7906a2a5",
    "h.10.mlp.c_fc.bias": "2f0c88abc4d0c1871371cf5ee6ab71617ba71e0d7d428fb00d7a8f40dd859041",
    "h.10.mlp.c_proj.bias": "9f76592c0f287e9d07f754e437e5eb382b52fb0f8f9fc98d83421b319e32404b",
    "h.11.attn.c_attn.bias": "c6986457b215979836e0c8c4def716590f8d1db9ba372fc99007715cd1adf4b6",
    "h.11.attn.c_attn.weight": "b4fc281ff5bf255dfccd63ea1c13281481134c84cc565b5a648cfabcbecd1630",
    "h.11.attn.c_proj.bias": "9ff98d1c914971eb382ec53ddbf885c75db8c0d970626512d565922845d30213",
    "h.11.attn.c_proj.weight": "be2b17561815008138e23302883718760ac336ee06ae3c008db0fb3c8d5fd83f",
    "h.11.ln_1.bias": "8012007aadcbf1ae8a6cb5e33495dfd565dcc819e6e38cbd3879c64d7538a67e",
    "h.11.ln_1.weight": "829592908c2c2d4fce699c300c01aac3b185777ef231a29d91f880c21997f5e6",
    "h.11.ln_2.bias": "8d347b0fede57daad897ce7fdd096ac7e0a34061634a1f7a71eb1ef178fccfb9",
    "h.11.ln_2.weight": "2da7a8debd3bf751ae402e3a99cef5f8b400ff4cb6f4cf81e48b49ec09a04280",
    "h.11.mlp.c_fc.bias": "9af0c1f873cd929c9ddfd672368e0292a46df76103b93fb53d1d76cf890f82f5",
    "h.11.mlp.c_proj.bias": "1d87ba328b87dd9de0de3e323d52b375d9e4b9296734462462c3a1c6b21ae2bc",
    "ln_f.bias": "3101f7c89d3985741e5e7a720572bb3b4967763b2b6f9c8d7be5f27bf9b6f225",
    "ln_f.weight": "0179316b9de281fc74b7a4edcec4370af4e5831242a2200daa7ce7c0c6546e8c",
    "wpe.weight": "29c69587e2af826b7c159c38620a32e549a925e6d9a0dc37cb563f377f5be772",
}

#: Shapes of these tensors (all float32).
RELEASED_SHAPES: dict[str, tuple[int, ...]] = {
    "h.0.attn.c_attn.bias": (2304,),
    "h.0.attn.c_attn.weight": (768, 2304),
    "h.0.attn.c_proj.bias": (768,),
    "h.0.attn.c_proj.weight": (768, 768),
    "h.0.ln_1.bias": (768,),
    "h.0.ln_1.weight": (768,),
    "h.0.ln_2.bias": (768,),
    "h.0.ln_2.weight": (768,),
    "h.0.mlp.c_fc.bias": (3072,),
    "h.0.mlp.c_proj.bias": (768,),
    "h.1.attn.c_attn.bias": (2304,),
    "h.1.attn.c_attn.weight": (768, 2304),
    "h.1.attn.c_proj.bias": (768,),
    "h.1.attn.c_proj.weight": (768, 768),
    "h.1.ln_1.bias": (768,),
    "h.1.ln_1.weight": (768,),
    "h.1.ln_2.bias": (768,),
    "h.1.ln_2.weight": (768,),
    "h.1.mlp.c_fc.bias": (3072,),
    "h.1.mlp.c_proj.bias": (768,),
    "h.2.attn.c_attn.bias": (2304,),
    "h.2.attn.c_attn.weight": (768, 2304),
    "h.2.attn.c_proj.bias": (768,),
    "h.2.attn.c_proj.weight": (768, 768),
    "h.2.ln_1.bias": (768,),
    "h.2.ln_1.weight": (768,),
    "h.2.ln_2.bias": (768,),
    "h.2.ln_2.weight": (768,),
    "h.2.mlp.c_fc.bias": (3072,),
    "h.2.mlp.c_proj.bias": (768,),
    "h.3.attn.c_attn.bias": (2304,),
    "h.3.attn.c_attn.weight": (768, 2304),
    "h.3.attn.c_proj.bias": (768,),
    "h.3.attn.c_proj.weight": (768, 768),
    "h.3.ln_1.bias": (768,),
    "h.3.ln_1.weight": (768,),
    "h.3.ln_2.bias": (768,),
    "h.3.ln_2.weight": (768,),
    "h.3.mlp.c_fc.bias": (3072,),
    "h.3.mlp.c_proj.bias": (768,),
    "h.4.attn.c_attn.bias": (2304,),
    "h.4.attn.c_attn.weight": (768, 2304),
    "h.4.attn.c_proj.bias": (768,),
    "h.4.attn.c_proj.weight": (768, 768),
    "h.4.ln_1.bias": (768,),
    "h.4.ln_1.weight": (768,),
    "h.4.ln_2.bias": (768,),
    "h.4.ln_2.weight": (768,),
    "h.4.mlp.c_fc.bias": (3072,),
    "h.4.mlp.c_proj.bias": (768,),
    "h.5.attn.c_attn.bias": (2304,),
    "h.5.attn.c_attn.weight": (768, 2304),
    "h.5.attn.c_proj.bias": (768,),
    "h.5.attn.c_proj.weight": (768, 768),
    "h.5.ln_1.bias": (768,),
    "h.5.ln_1.weight": (768,),
    "h.5.ln_2.bias": (768,),
    "h.5.ln_2.weight": (768,),
    "h.5.mlp.c_fc.bias": (3072,),
    "h.5.mlp.c_proj.bias": (768,),
    "h.6.attn.c_attn.bias": (2304,),
    "h.6.attn.c_attn.weight": (768, 2304),
    "h.6.attn.c_proj.bias": (768,),
    "h.6.attn.c_proj.weight": (768, 768),
    "h.6.ln_1.bias": (768,),
    "h.6.ln_1.weight": (768,),
    "h.6.ln_2.bias": (768,),
    "h.6.ln_2.weight": (768,),
    "h.6.mlp.c_fc.bias": (3072,),
    "h.6.mlp.c_proj.bias": (768,),
    "h.7.attn.c_attn.bias": (2304,),
    "h.7.attn.c_attn.weight": (768, 2304),
    "h.7.attn.c_proj.bias": (768,),
    "h.7.attn.c_proj.weight": (768, 768),
    "h.7.ln_1.bias": (768,),
    "h.7.ln_1.weight": (768,),
    "h.7.ln_2.bias": (768,),
    "h.7.ln_2.weight": (768,),
    "h.7.mlp.c_fc.bias": (3072,),
    "h.7.mlp.c_proj.bias": (768,),
    "h.8.attn.c_attn.bias": (2304,),
    "h.8.attn.c_attn.weight": (768, 2304),
    "h.8.attn.c_proj.bias": (768,),
    "h.8.attn.c_proj.weight": (768, 768),
    "h.8.ln_1.bias": (768,),
    "h.8.ln_1.weight": (768,),
    "h.8.ln_2.bias": (768,),
    "h.8.ln_2.weight": (768,),
    "h.8.mlp.c_fc.bias": (3072,),
    "h.8.mlp.c_proj.bias": (768,),
    "h.9.attn.c_attn.bias": (2304,),
    "h.9.attn.c_attn.weight": (768, 2304),
    "h.9.attn.c_proj.bias": (768,),
    "h.9.attn.c_proj.weight": (768, 768),
    "h.9.ln_1.bias": (768,),
    "h.9.ln_1.weight": (768,),
    "h.9.ln_2.bias": (768,),
    "h.9.ln_2.weight": (768,),
    "h.9.mlp.c_fc.bias": (3072,),
    "h.9.mlp.c_proj.bias": (768,),
    "h.10.attn.c_attn.bias": (2304,),
    "h.10.attn.c_attn.weight": (768, 2304),
    "h.10.attn.c_proj.bias": (768,),
    "h.10.attn.c_proj.weight": (768, 768),
    "h.10.ln_1.bias": (768,),
    "h.10.ln_1.weight": (768,),
    "h.10.ln_2.bias": (768,),
    "h.10.ln_2.weight": (768,),
    "h.10.mlp.c_fc.bias": (3072,),
    "h.10.mlp.c_proj.bias": (768,),
    "h.11.attn.c_attn.bias": (2304,),
    "h.11.attn.c_attn.weight": (768, 2304),
    "h.11.attn.c_proj.bias": (768,),
    "h.11.attn.c_proj.weight": (768, 768),
    "h.11.ln_1.bias": (768,),
    "h.11.ln_1.weight": (768,),
    "h.11.ln_2.bias": (768,),
    "h.11.ln_2.weight": (768,),
    "h.11.mlp.c_fc.bias": (3072,),
    "h.11.mlp.c_proj.bias": (768,),
    "ln_f.bias": (768,),
    "ln_f.weight": (768,),
    "wpe.weight": (1024, 768),
}
