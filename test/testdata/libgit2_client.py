"""A git client on libgit2 (pygit2): clone URL into DEST, commit, push.

Usage: libgit2_client.py URL PRIVATE-KEY PUBLIC-KEY DEST

The host key is checked by libgit2 against $HOME/.ssh/known_hosts; an
unknown or different key fails the clone. Prints the pushed commit.
"""
import sys

import pygit2


class Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, private, public):
        super().__init__()
        self.private, self.public = private, public

    def credentials(self, url, username, allowed):
        return pygit2.Keypair(username or "git", self.public, self.private, "")

    def certificate_check(self, certificate, valid, host):
        return valid


def main():
    url, private, public, dest = sys.argv[1:5]
    cb = Callbacks(private, public)
    repo = pygit2.clone_repository(url, dest, callbacks=cb)
    sig = pygit2.Signature("t", "t@example.com")
    blob = repo.create_blob(b"from libgit2\n")
    builder = repo.TreeBuilder(repo.head.peel().tree)
    builder.insert("libgit2.txt", blob, pygit2.GIT_FILEMODE_BLOB)
    commit = repo.create_commit("refs/heads/main", sig, sig, "libgit2", builder.write(), [repo.head.target])
    repo.remotes["origin"].push(["refs/heads/main:refs/heads/main"], callbacks=cb)
    print(commit)


if __name__ == "__main__":
    main()
