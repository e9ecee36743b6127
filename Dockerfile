# ProberMesh: both binaries in one minimal image. The version is package.json's; pass it as
# VERSION to label and tag the image (the build stops if it disagrees with package.json):
#   VERSION=$(node -p 'require("./package.json").version')
#   docker build --build-arg VERSION=$VERSION -t probermesh:$VERSION .
#   docker run --rm -p 6000:6000 -p 6001:6001 -v "$PWD/tokens.txt:/tokens.txt:ro" probermesh:$VERSION \
#     /probermesh-server -server.rpc.listen.addr :6000 -server.rpc.token.file /tokens.txt -server.http.listen.addr :6001
#   docker run --rm --network host --cap-drop ALL --cap-add NET_RAW -e PROBER_TOKEN="$(cat token)" probermesh:$VERSION \
#     /probermesh-agent -region my-region -server.rpc.addr probermesh.example:6000
# Stage 1 builds with Node and npm only (Bun comes from the npm registry); stage 2 holds the two
# self-contained executables on a distroless base with glibc.
ARG VERSION=""

FROM node:22-bookworm-slim AS build
ARG VERSION
WORKDIR /src
COPY package.json package-lock.json ./
# VERSION defaults to package.json's version; a different --build-arg VERSION is a mistake.
RUN pkg=$(node -p 'require("./package.json").version') \
 && if [ -n "$VERSION" ] && [ "$VERSION" != "$pkg" ]; then echo "VERSION=$VERSION but package.json says $pkg" >&2; exit 1; fi \
 && echo "building probermesh $pkg"
RUN npm install --no-audit --no-fund
COPY . .
RUN npx bun run scripts/build.ts

FROM gcr.io/distroless/cc-debian12
ARG VERSION
LABEL org.opencontainers.image.title="probermesh" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/dist/server /probermesh-server
COPY --from=build /src/dist/agent /probermesh-agent
EXPOSE 6000 6001
ENTRYPOINT []
CMD ["/probermesh-server"]
